"""The ``helixserve`` command line (typer).

Contract:
- ``helixserve --help`` lists every sub-command named in DESIGN.md; ``--version`` prints the
  version.
- Domain errors (:class:`~helixserve.errors.HelixError`) are printed as ``Error: <message>`` on
  stderr with exit status 1 — never a traceback. Usage errors are typer's (exit 2).
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.markup import escape

from helixserve import __version__
from helixserve.cli.bench import bench
from helixserve.cli.explain import design, explain_app
from helixserve.cli.models import models_app
from helixserve.cli.predict import predict
from helixserve.cli.serve import keys_app, serve
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
app.command(help=predict.__doc__)(predict)
app.add_typer(keys_app, name="keys")
app.add_typer(explain_app, name="explain")
app.command(help=design.__doc__)(design)


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


@app.command()
def quickstart(
    port: int = typer.Option(8000, help="HTTP port."),
    grpc_port: int = typer.Option(8001, help="gRPC port (0: off)."),
) -> None:
    """Serve the pretrained models shipped in the package, and yours (no training, no download)."""
    serve(port=port, grpc_port=grpc_port)


def main() -> None:
    """Entry point: run the app, translating domain errors to ``Error: ...`` and exit 1."""
    try:
        app()
    except HelixError as err:
        err_console.print(
            f"[bold red]Error:[/] {escape(str(err))}", highlight=False, soft_wrap=True
        )
        sys.exit(1)
