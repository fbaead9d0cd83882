"""The API's documentation page, ``/docs`` (Swagger UI), with no network.

Contract:
- ``/docs`` loads its script and stylesheet from this server: the Swagger UI 5 assets of the
  ``fastapi-offline`` package (a maintained PyPI package that bundles them; Swagger UI 4, as in
  ``swagger-ui-bundle`` 1.1.0, refuses the OpenAPI 3.1 documents FastAPI writes), mounted at
  :data:`ASSETS`. The favicon is the UI's own. Nothing is fetched from a CDN.
- :data:`DOCS_CSP` is the page's content security policy: everything from this server, plus the
  page's one inline script allowed by its sha256 (computed here from the page itself, so it
  cannot drift); no framing.
- No ``/redoc``: ReDoc 2 always loads its logo from its vendor's CDN. No OAuth2 redirect page
  either: the API takes keys in headers, not OAuth2 flows.
"""

from __future__ import annotations

import base64
import hashlib
import re
from importlib.resources import files

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs-assets"
FAVICON = "/static/favicon.svg"
TITLE = "helixserve API"


def swagger_page() -> HTMLResponse:
    """The ``/docs`` page."""
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title=f"{TITLE} - Swagger UI",
        swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS}/swagger-ui.css",
        swagger_favicon_url=FAVICON,
        oauth2_redirect_url=None,
    )


def _inline_script_hashes(page: HTMLResponse) -> list[str]:
    html = bytes(page.body).decode("utf-8")
    scripts = re.findall(r"<script>(.*?)</script>", html, re.S)
    return [
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in scripts
    ]


DOCS_CSP = (
    "default-src 'self'; "
    f"script-src 'self' {' '.join(_inline_script_hashes(swagger_page()))}; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def mount_docs(api: FastAPI) -> None:
    """Serve the assets and ``/docs`` (``api`` must be made with ``docs_url=None`` and
    ``redoc_url=None``)."""
    folder = files("fastapi_offline").joinpath("static")
    api.mount(ASSETS, StaticFiles(directory=str(folder)), name="docs-assets")
    api.get("/docs", include_in_schema=False)(swagger_page)
