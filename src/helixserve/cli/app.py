"""The ``helixserve`` command line (typer).

Contract:
- ``helixserve --help`` says what helixserve is, names the two ways in (``quickstart``,
  ``serve``) and lists every sub-command named in DESIGN.md; ``--version`` prints the version.
- Every command's ``--help`` follows :mod:`helixserve.cli.options` (flags without a value,
  metavars, choices, upper-case arguments, an ``Examples:`` epilog).
- Domain errors (:class:`~helixserve.errors.HelixError`) are printed as ``Error: <message>`` on
  stderr with exit status 1 — never a traceback. Usage errors (a missing argument, a value that
  is not one of an option's choices) are typer's (exit 2).
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from helixserve import __version__
from helixserve.cli.bench import BENCH_EXAMPLES, bench
from helixserve.cli.datasets import datasets_app
from helixserve.cli.experiments import experiments_app
from helixserve.cli.explain import DESIGN_EXAMPLES, design, explain_app
from helixserve.cli.models import models_app
from helixserve.cli.options import HelixGroup, examples
from helixserve.cli.predict import PREDICT_EXAMPLES, predict
from helixserve.cli.projects import projects_app
from helixserve.cli.runs import runs_app
from helixserve.cli.serve import SERVE_EXAMPLES, keys_app, serve
from helixserve.cli.train import TRAIN_EXAMPLES, TRAIN_HELP, train
from helixserve.cli.users import users_app
from helixserve.cli.validate import VALIDATE_EXAMPLES, validate
from helixserve.cli.variants import VARIANTS_EXAMPLES, variants
from helixserve.cli.worker import WORKER_EXAMPLES, worker
from helixserve.cli.zoo import zoo_app
from helixserve.errors import HelixError

err_console = Console(stderr=True)

QUICKSTART_EXAMPLES = examples(
    ("Serve the pretrained models; open http://127.0.0.1:8000", "quickstart"),
    ("Another HTTP port, no gRPC server", "quickstart --port 8080 --grpc-port 0"),
)


def quickstart(
    port: Annotated[
        int | None, typer.Option(metavar="PORT", help="HTTP port (default HELIXSERVE_PORT, 8000).")
    ] = None,
    grpc_port: Annotated[
        int | None,
        typer.Option(
            metavar="PORT", help="gRPC port; 0: none (default HELIXSERVE_GRPC_PORT, 8001)."
        ),
    ] = None,
) -> None:
    """Serve the pretrained models shipped in the package, and yours (no training, no download)."""
    serve(port=port, grpc_port=grpc_port)


HELP = """Train, store and serve machine-learning models for life-science data: DNA/RNA \
sequences, lab measurements and microscopy images.

Start with helixserve quickstart or helixserve serve: the pretrained models and yours, \
with a web page at http://127.0.0.1:8000. Every command has \
--help with examples."""

app = typer.Typer(
    name="helixserve",
    cls=HelixGroup,
    help=HELP,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)
app.command(epilog=QUICKSTART_EXAMPLES)(quickstart)
app.command(epilog=SERVE_EXAMPLES)(serve)
app.command(epilog=PREDICT_EXAMPLES)(predict)
app.command(epilog=TRAIN_EXAMPLES, help=TRAIN_HELP)(train)
app.command(epilog=WORKER_EXAMPLES)(worker)
app.command(epilog=VALIDATE_EXAMPLES)(validate)
app.command(epilog=DESIGN_EXAMPLES)(design)
app.command(epilog=VARIANTS_EXAMPLES)(variants)
app.command(epilog=BENCH_EXAMPLES)(bench)
app.add_typer(models_app, name="models")
app.add_typer(explain_app, name="explain")
app.add_typer(keys_app, name="keys")
app.add_typer(zoo_app, name="zoo")
app.add_typer(projects_app, name="projects")
app.add_typer(datasets_app, name="datasets")
app.add_typer(experiments_app, name="experiments")
app.add_typer(runs_app, name="runs")
app.add_typer(users_app, name="users")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"helixserve {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", callback=_version, is_eager=True
        ),
    ] = False,
) -> None:
    """helixserve's root: the global options."""


def main() -> None:
    """Entry point: run the app, translating domain errors to ``Error: ...`` and exit 1."""
    try:
        app(prog_name="helixserve")
    except HelixError as err:
        err_console.print(
            f"[bold red]Error:[/] {escape(str(err))}", highlight=False, soft_wrap=True
        )
        sys.exit(1)
