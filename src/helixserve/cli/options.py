"""How every ``helixserve`` command presents itself in ``--help``, and the options they share.

Contract (checked for every command of the app by ``tests/test_cli_help.py``):
- Flags show no value: :class:`HelixGroup`, the root group's class, clears the type shown for
  every boolean flag, for ``--help`` and beside every argument once typer has built the command
  tree.
- A value option names its value with a metavar (``--store URI``, ``--port PORT``,
  ``-o, --output FILE``); an option with a fixed set of values is typed as a ``Literal``, so
  ``--help`` lists the values and click refuses any other with its standard usage error (exit 2).
- Arguments are upper-case (``MODEL``, ``INPUT``); every argument and option has a help line in
  sentence case ending with a full stop.
- Every command ends its help with an ``Examples:`` epilog made by :func:`examples`.
"""

from __future__ import annotations

import re
import textwrap
from typing import Annotated, Any

import typer
from rich.markup import escape
from typer.core import TyperArgument, TyperGroup, TyperOption

StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        metavar="URI",
        help="Model store: a folder, file:// or s3:// URI (default: HELIXSERVE_STORE).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
ModelArgument = Annotated[
    str,
    typer.Argument(metavar="MODEL", help="The model: NAME, NAME@VERSION or NAME@ALIAS."),
]


def examples(*pairs: tuple[str, str]) -> str:
    """An ``Examples:`` epilog: for each ``(what it does, command)`` pair a comment line and a
    ``$ helixserve ...`` line, indented, broken with `` \\`` before an option where it would
    pass 78 columns (an 80-column terminal less the help's margins), rich markup escaped."""
    lines = ["Examples:"]
    for what, command in pairs:
        # an option and its value stay together: join them with a no-break placeholder
        text = re.sub(r"(?<=\s)(-\S+) (?=[^-\s])", "\\1\0", f"helixserve {command}")
        parts = textwrap.wrap(
            text, width=72, subsequent_indent="    ", break_long_words=False, break_on_hyphens=False
        )
        lines += ["", f"  # {what}", "  $ " + " \\\n  ".join(parts).replace("\0", " ")]
    # typer removes the indentation common to all lines after the first (inspect.cleandoc):
    # an empty first line keeps "Examples:" unindented and the examples indented under it
    return "\n" + escape("\n".join(lines))


def _commands(command: typer.core.TyperCommand | TyperGroup) -> list[Any]:
    """``command`` and every command below it."""
    found: list[Any] = [command]
    for sub in getattr(command, "commands", {}).values():
        found += _commands(sub)
    return found


def _no_type(ctx: object) -> None:
    """An argument's type column in ``--help``: empty (the metavar, e.g. MODEL, names it)."""
    return None


class HelixGroup(TyperGroup):
    """The root group: once typer has built the tree, flags (``--json``, ``--help``) show no
    value in ``--help`` instead of a type such as ``<bool>``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for command in _commands(self):
            flags = [p for p in command.params if isinstance(p, TyperOption) and p.is_flag]
            help_option = command.get_help_option(
                typer.Context(command, **command.context_settings)
            )
            for flag in [*flags, *([help_option] if help_option else [])]:
                if flag.metavar is None:
                    flag.metavar = ""
            for argument in command.params:
                if isinstance(argument, TyperArgument):  # its name says it all: no <str> beside it
                    setattr(argument, "display_type_rich", _no_type)  # noqa: B010


ResumeOption = Annotated[bool, typer.Option("--resume", help="Continue an interrupted run.")]
ThreadsOption = Annotated[int, typer.Option(metavar="N", help="ONNX Runtime threads.")]
