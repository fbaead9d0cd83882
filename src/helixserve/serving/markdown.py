"""Model cards (``card.md``) as safe HTML, rendered by markdown-it-py (CommonMark + tables).

Contract: :func:`to_html` renders CommonMark with GFM tables. Raw HTML in a card is never passed
through: it is shown as escaped text, so a card cannot inject markup or script. Links keep
only ``http``/``https`` targets, relative paths and ``#`` anchors; any other target
(``javascript:``, ``data:``, ``file:``, ...) is left as plain text. Images are not embedded
(an image's Markdown becomes ``!`` and a link to it). Headings move one level down
(``#`` is ``<h2>``): the page title is the ``<h1>``.
"""

from __future__ import annotations

import re
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.token import Token

_SAFE_LINK = re.compile(r"^(?:https?://|/|#|\.{0,2}/|[^:/?#]*(?:[/?#]|$))", re.IGNORECASE)


def _safe_link(url: str) -> bool:
    """http(s), or a relative reference (no scheme at all)."""
    return _SAFE_LINK.match(url.strip()) is not None


def _heading_down(_renderer: Any, tokens: list[Token], idx: int, _options: Any, _env: Any) -> str:
    token = tokens[idx]
    level = min(int(token.tag[1]) + 1, 6)
    return f"<h{level}>" if token.nesting == 1 else f"</h{level}>\n"


def _renderer() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable("table").disable("image")
    md.validateLink = _safe_link  # type: ignore[method-assign]
    md.add_render_rule("heading_open", _heading_down)
    md.add_render_rule("heading_close", _heading_down)
    return md


_MD = _renderer()


def to_html(markdown: str) -> str:
    """Render a card; see the module contract."""
    html: str = _MD.render(markdown)
    return html
