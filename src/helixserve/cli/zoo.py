"""``helixserve zoo build``: retrain the pretrained zoo from the real datasets (train extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from helixserve.cli.options import examples
from helixserve.errors import HelixError
from helixserve.store.configured import PRETRAINED_STORE

zoo_app = typer.Typer(
    help="The pretrained zoo: rebuild it from the datasets.", no_args_is_help=True
)
console = Console()


@zoo_app.command(
    "build",
    epilog=examples(
        ("Rebuild every zoo model from ../shared/data", "zoo build"),
        (
            "Rebuild one model, without the slow cross-validation",
            "zoo build --only yeast-utr --no-cv",
        ),
    ),
)
def build(
    data: Annotated[Path, typer.Option(metavar="DIR", help="Folder holding the datasets.")] = Path(
        "../shared/data"
    ),
    store: Annotated[
        str | None,
        typer.Option(metavar="URI", help="Store to publish into (default: the package's zoo)."),
    ] = None,
    only: Annotated[
        str | None, typer.Option(metavar="NAMES", help="Zoo models to build, comma-separated.")
    ] = None,
    cv: Annotated[
        bool, typer.Option(help="Also run the cross-validation criteria (slow for yeast-utr).")
    ] = True,
) -> None:
    """Retrain the zoo models from the datasets with fixed seeds and publish them."""
    try:
        from helixserve.training import zoo  # noqa: PLC0415 - optional extra
    except ImportError as err:
        raise HelixError(
            f"the zoo build needs the train extra ({err.name} is missing): "
            "pip install 'helixserve[train]'."
        ) from None
    from helixserve.cli.models import open_store  # noqa: PLC0415
    from helixserve.explain.precision import compare_ism  # noqa: PLC0415

    target = open_store(store or str(PRETRAINED_STORE))
    for line in zoo.build(
        data, target, only.split(",") if only else None, cv=cv, compare=compare_ism
    ):
        console.print(line, highlight=False)
