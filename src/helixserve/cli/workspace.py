"""What the workspace commands share (``helixserve projects|datasets|experiments|runs ...``).

Contract:
- :func:`opened` is the workspace the server uses (``Workspace.from_settings(load_settings())``:
  ``HELIXSERVE_DATABASE_URL``, ``HELIXSERVE_WORKSPACE_STORE``, ``HELIXSERVE_STORE``), migrated,
  with one session that commits when the command's block ends (rolls back if it raises) and is
  closed after it. The commands call the same workspace operations as the REST API, so a
  notebook, the web pages and the CLI share one workspace.
- :data:`ProjectOption` is the ``-p/--project`` option every command inside a project takes.
- :func:`table` is the rich table every listing prints; :func:`when` a timestamp as a person
  reads it; :func:`pairs` reads ``NAME=VALUE`` options. Errors are typed
  :class:`~helixserve.errors.HelixError` (``Error: ...``, exit 1, from
  :func:`helixserve.cli.app.main`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from helixserve.errors import InputError
from helixserve.settings import load_settings
from helixserve.workspace.space import Workspace

console = Console()
ProjectOption = Annotated[
    str,
    typer.Option("--project", "-p", metavar="PROJECT", help="The project, by name."),
]


@contextmanager
def opened() -> Iterator[tuple[Workspace, Session]]:
    """The configured workspace and a session (see the module contract)."""
    space = Workspace.from_settings(load_settings()).open()
    try:
        with space.db.session() as session:
            yield space, session
    finally:
        space.db.close()


def table(*columns: str, title: str | None = None) -> Table:
    """A listing's table, in the style of ``helixserve models list``."""
    return Table(*columns, title=title, box=box.SIMPLE_HEAD, collapse_padding=True, pad_edge=False)


def when(moment: datetime | None) -> str:
    """``2025-01-31 14:02`` (UTC), or ``-``."""
    return moment.strftime("%Y-%m-%d %H:%M") if moment is not None else "-"


def shown(value: Any) -> str:
    """A value in a table cell: numbers to 4 significant digits, ``-`` for none."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def pairs(texts: list[str] | None, option: str) -> dict[str, str]:
    """``["a=b", ...]`` (a repeatable ``NAME=VALUE`` option) as a dict; else InputError."""
    found: dict[str, str] = {}
    for text in texts or []:
        name, sep, value = (part.strip() for part in text.partition("="))
        if not sep or not name or not value:
            raise InputError(f"{option} must look like NAME=VALUE, got {text!r}.", field=option)
        found[name] = value
    return found


def say(text: str) -> None:
    """One line of plain output (no markup, no highlighting)."""
    console.print(text, highlight=False, markup=False, soft_wrap=True)
