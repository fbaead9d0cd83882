"""The API's documentation pages, ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), with no network.

Contract:
- Both pages load their scripts and styles from this server: the assets of the
  ``fastapi-offline`` package (a maintained PyPI package that bundles Swagger UI 5 and ReDoc 2;
  Swagger UI 4, as in ``swagger-ui-bundle``, cannot read the OpenAPI 3.1 documents FastAPI
  writes), mounted at :data:`ASSETS`. The favicon is the UI's own. Nothing is fetched from a CDN,
  and ReDoc asks for no web fonts.
- :data:`DOCS_CSP` is the content security policy of both pages: everything from this server,
  and the one inline script of the Swagger UI page allowed by its sha256 (computed here from the
  page itself, so it cannot drift), no framing.
- No OAuth2 redirect page: the API takes keys in headers, not OAuth2 flows.
"""

from __future__ import annotations

import base64
import hashlib
import re
from importlib.resources import files

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
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


def redoc_page() -> HTMLResponse:
    """The ``/redoc`` page."""
    return get_redoc_html(
        openapi_url="/openapi.json",
        title=f"{TITLE} - ReDoc",
        redoc_js_url=f"{ASSETS}/redoc.standalone.js",
        redoc_favicon_url=FAVICON,
        with_google_fonts=False,
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
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; worker-src 'self' blob:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def mount_docs(api: FastAPI) -> None:
    """Serve the assets and the two pages (``api`` must be made with ``docs_url=None`` and
    ``redoc_url=None``)."""
    folder = files("fastapi_offline").joinpath("static")
    api.mount(ASSETS, StaticFiles(directory=str(folder)), name="docs-assets")
    api.get("/docs", include_in_schema=False)(swagger_page)
    api.get("/redoc", include_in_schema=False)(redoc_page)
