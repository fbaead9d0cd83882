"""``helixserve train RECIPE --data FILE ...``: train a model and publish it to the store.

Contract: the training layer (torch, scikit-learn: the ``train`` extra) is imported only when
this command runs; without it the command says how to install it. Records that fail validation
are counted and the first ones shown, never silently dropped. The result is published as the next
version of ``--name`` and summarised (metrics on the test split, time, parity of the ONNX export).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markdown import Markdown
from rich.table import Table

from helixserve.errors import HelixError

console = Console()


def _training() -> Any:
    try:
        import helixserve.training.cli_support as support  # noqa: PLC0415 - optional extra
    except ImportError as err:
        raise HelixError(
            f"training needs the train extra ({err.name} is not installed): "
            "pip install 'helixserve[train]'."
        ) from None
    return support


def train(
    recipe: Annotated[
        str, typer.Argument(help="dna-binary, dna-regression, dna-variable, tabular or image.")
    ],
    data: Annotated[Path, typer.Option(help="Training file: CSV/TSV/FASTA/text (.gz is fine).")],
    name: Annotated[str | None, typer.Option(help="Model name (default: the recipe).")] = None,
    target: Annotated[str | None, typer.Option(help="Column holding the target.")] = None,
    labels: Annotated[Path | None, typer.Option(help="File with one label per record.")] = None,
    sequence_col: Annotated[str | None, typer.Option(help="Sequence column (CSV/TSV).")] = None,
    id_col: Annotated[str | None, typer.Option(help="Id column.")] = None,
    split_col: Annotated[str | None, typer.Option(help="Column: train/val/test or T/V.")] = None,
    header: Annotated[
        str | None, typer.Option(help="Column names for a file without header, comma-separated.")
    ] = None,
    features: Annotated[
        str | None,
        typer.Option(
            help="Tabular: feature columns, comma-separated (default: all but target/id)."
        ),
    ] = None,
    feature_type: Annotated[str, typer.Option(help="Tabular: int or float.")] = "float",
    feature_range: Annotated[
        str | None, typer.Option(help="Tabular: MIN:MAX for every feature.")
    ] = None,
    length: Annotated[int, typer.Option(help="dna-binary: length; dna-regression: longest.")] = 50,
    pad_to: Annotated[int, typer.Option(help="dna-variable: pad/truncate to this length.")] = 1024,
    image_size: Annotated[int, typer.Option(help="image: side in pixels after resizing.")] = 128,
    channels: Annotated[int, typer.Option(help="image: 1 (grey) or 3 (RGB).")] = 1,
    path_col: Annotated[str, typer.Option(help="image CSV: column of image paths.")] = "path",
    crop: Annotated[
        int, typer.Option(help="image: train on random crops of this side at native size (0: off).")
    ] = 0,
    tiles: Annotated[
        int, typer.Option(help="image with --crop: TILES x TILES crops per image (0: cover it).")
    ] = 0,
    crops_per_image: Annotated[
        int, typer.Option(help="image with --crop: random crops per image per epoch.")
    ] = 32,
    normalize: Annotated[
        str, typer.Option(help="image with --crop: per-image (z-score each crop) or none.")
    ] = "per-image",
    group_col: Annotated[
        str | None, typer.Option(help="Keep each group (plate, site) in one part.")
    ] = None,
    bag_col: Annotated[
        str | None, typer.Option(help="dna-variable: column naming each sequence's bag (isolate).")
    ] = None,
    pool: Annotated[
        str, typer.Option(help="dna-variable with --bag-col: max, noisy-or or lse.")
    ] = "",
    stride: Annotated[
        int, typer.Option(help="dna-variable: k-mer conv stem of this stride (1: none).", min=1)
    ] = 1,
    filter: Annotated[str | None, typer.Option(help="Keep rows like 't0>100'.")] = None,
    arch: Annotated[
        str,
        typer.Option(
            help="dna-binary: cnn or lstm; dna-variable: bilstm or cnn; tabular: rf or gb."
        ),
    ] = "",
    epochs: Annotated[int, typer.Option(help="Maximum epochs (neural recipes).", min=1)] = 60,
    test_fraction: Annotated[float, typer.Option(help="Held-out share (random split).")] = 0.2,
    seed: Annotated[int, typer.Option(help="Random seed (splits, weights, order).")] = 0,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    store: Annotated[str | None, typer.Option(help="Store URI (default HELIXSERVE_STORE).")] = None,
    work_dir: Annotated[Path | None, typer.Option(help="Folder for live history.json.")] = None,
    label_names: Annotated[
        str | None, typer.Option(help="Rename classes, e.g. 2=benign,4=malignant.")
    ] = None,
    calibrate: Annotated[
        str | None, typer.Option(help="Tabular: calibrate probabilities (sigmoid or isotonic).")
    ] = None,
    class_weight: Annotated[
        str | None,
        typer.Option(
            help="dna-binary, tabular: none, balanced, or LABEL=WEIGHT pairs (e.g. 0=1,1=4)."
        ),
    ] = None,
    init_from: Annotated[
        str | None, typer.Option(help="Continue from NAME@VERSION's weights (same recipe).")
    ] = None,
    search: Annotated[
        int | None, typer.Option(help="Optuna trials of hyper-parameter search (CV-scored).")
    ] = None,
    cv: Annotated[
        int | None, typer.Option(help="Also report K-fold CV on the non-test part.")
    ] = None,
    kmer_ridge: Annotated[
        bool, typer.Option(help="dna-regression: blend the CNN with a k-mer ridge regression.")
    ] = True,
    resume: Annotated[
        bool,
        typer.Option(
            help="Continue the interrupted run from the checkpoint in its work dir "
            "(same data and options)."
        ),
    ] = False,
    card: Annotated[
        Path | None, typer.Option(help="Markdown file appended to the model card.")
    ] = None,
    limits: Annotated[
        str | None, typer.Option(help="Card section '## Limits': where not to use the model.")
    ] = None,
    citation: Annotated[
        str | None, typer.Option(help="Card section '## Citation': what to cite.")
    ] = None,
    licence: Annotated[
        str | None, typer.Option(help="Card section '## Licence': the model's licence.")
    ] = None,
) -> None:
    """Train a model from a recipe on your data and publish it to the store."""
    from helixserve.cli.models import open_store  # noqa: PLC0415 - keeps --help fast

    support = _training()
    options = support.TrainOptions(
        recipe=recipe,
        data=data,
        name=name or recipe,
        target=target,
        labels=labels,
        sequence_col=sequence_col,
        id_col=id_col,
        split_col=split_col,
        header=header.split(",") if header else None,
        features=features.split(",") if features else None,
        feature_type=feature_type,
        feature_range=feature_range,
        length=length,
        pad_to=pad_to,
        image_size=image_size,
        channels=channels,
        path_col=path_col,
        crop=crop,
        tiles=tiles,
        crops_per_image=crops_per_image,
        normalize=normalize,
        group_col=group_col,
        bag_col=bag_col,
        pool=pool,
        stride=stride,
        filter=filter,
        arch=arch,
        epochs=epochs,
        cv=cv,
        search=search,
        init_from=init_from,
        calibrate=calibrate,
        class_weight=class_weight,
        label_names=label_names,
        test_fraction=test_fraction,
        seed=seed,
        device=device,
        work_dir=work_dir,
        kmer_ridge=kmer_ridge,
        resume=resume,
        card=card,
        limits=limits,
        citation=citation,
        licence=licence,
    )
    models = open_store(store)
    live = work_dir or models.cache_dir.parent / "runs" / options.name
    console.print(f"per-epoch history (live): {live / 'history.json'}", highlight=False)
    outcome = support.run(options, models, progress=console.is_terminal)
    _summary(outcome)


def _summary(outcome: Any) -> None:
    manifest = outcome.manifest
    table = Table("metric (test split)", "value", title=f"{manifest.name}@{manifest.version}")
    for key, value in sorted(manifest.metrics.items()):
        table.add_row(key, f"{value:.4f}")
    console.print(table)
    lineage = manifest.lineage
    if lineage is not None and lineage.how == "resume":
        epoch = lineage.details.get("resumed_from_epoch", "?")
        shown = f"{epoch:g}" if isinstance(epoch, float) else epoch
        console.print(f"resumed after epoch {shown} of the interrupted run", highlight=False)
    console.print(
        f"trained and published in {outcome.seconds:.1f} s; ONNX parity {outcome.parity:.2g}; "
        f"{outcome.refused:,} records refused by validation",
        highlight=False,
    )
    if outcome.cv_table:
        console.print(Markdown(outcome.cv_table))
    for item in outcome.refused_examples:
        console.print(f"  refused: {item.error}", highlight=False, markup=False)
