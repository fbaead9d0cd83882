"""The ``helixserve`` command line (typer).

Contract:
- ``helixserve --help`` lists every sub-command named in DESIGN.md; ``--version`` prints the
  version. Sub-commands whose layer has not landed yet say so in their help and, when run, print
  ``Error: ...`` naming the issue that brings them and exit 1: none pretends to work.
- Domain errors (:class:`~helixserve.errors.HelixError`) are printed as ``Error: <message>`` on
  stderr with exit status 1 — never a traceback. Usage errors are typer's (exit 2).
"""

from __future__ import annotations

import sys
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from helixserve import __version__
from helixserve.cli.bench import bench
from helixserve.cli.models import models_app
from helixserve.cli.serve import ZOO_STORE, keys_app, serve
from helixserve.cli.train import train
from helixserve.cli.validate import validate
from helixserve.cli.zoo import zoo_app
from helixserve.errors import HelixError

err_console = Console(stderr=True)

app = typer.Typer(
    name="helixserve",
    help="Train, store and serve machine-learning models for life-science data.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)
app.add_typer(models_app, name="models")
app.add_typer(zoo_app, name="zoo")
app.command(help=validate.__doc__)(validate)
app.command(help=train.__doc__)(train)
app.command(help=serve.__doc__)(serve)
app.command(help=bench.__doc__)(bench)
app.add_typer(keys_app, name="keys")

_PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"helixserve {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", help="Print the version and exit.", callback=_version, is_eager=True
    ),
) -> None:
    """Train, store and serve machine-learning models for life-science data."""


def _not_yet(command: str, issue: int, layer: str) -> NoReturn:
    raise HelixError(
        f"`helixserve {command}` is not available yet: it arrives with {layer} (issue #{issue}). "
        "Run `helixserve --help` to see what works today."
    )


@app.command(context_settings=_PASS_THROUGH)
def predict() -> None:
    """Score a big CSV/TSV/FASTA/Parquet file, resumably. [yellow](Not yet: issue #7.)[/]"""
    _not_yet("predict", 7, "batch scoring")


@app.command()
def quickstart(
    port: int = typer.Option(8000, help="HTTP port."),
    grpc_port: int = typer.Option(8001, help="gRPC port (0: off)."),
) -> None:
    """Serve the pretrained models shipped in the package (no training, no download)."""
    serve(store=str(ZOO_STORE), port=port, grpc_port=grpc_port, reload_interval=0)


def main() -> None:
    """Entry point: run the app, translating domain errors to ``Error: ...`` and exit 1."""
    try:
        app()
    except HelixError as err:
        err_console.print(
            f"[bold red]Error:[/] {escape(str(err))}", highlight=False, soft_wrap=True
        )
        sys.exit(1)
