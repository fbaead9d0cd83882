"""``helixserve train RECIPE --data FILE ...``: train a model and publish it to the store.

Contract: the training layer (torch, scikit-learn: the ``train`` extra) is imported only when
this command runs; without it the command says how to install it. Records that fail validation
are counted and the first ones shown, never silently dropped. The result is published as the next
version of ``--name`` and summarised (metrics on the test split, time, parity of the ONNX export).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias

import typer
from rich.console import Console
from rich.markup import escape

from helixserve.cli.options import StoreOption, examples
from helixserve.cli.train_summary import print_summary
from helixserve.errors import HelixError
from helixserve.params.declare import declarations
from helixserve.params.recipes import DECLARED, RECIPE_NAMES, parse_params
from helixserve.training.train_options import shortcut_params

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


def _choices(recipe: str, name: str) -> Any:
    """The declared choices of a recipe's parameter, as a ``Literal`` for typer ('' left out)."""
    declared = {d.name: d for d in declarations(DECLARED[recipe])}[name]
    return Literal[tuple(c for c in declared.spec.choices if c != "")]


if TYPE_CHECKING:
    Recipe: TypeAlias = str
    Pool: TypeAlias = str
    Normalize: TypeAlias = str
    Device: TypeAlias = str
    Calibrate: TypeAlias = str
else:  # the choices come from the declarations (params.recipes), not a copy of them
    Recipe = Literal[RECIPE_NAMES]
    Pool = _choices("dna-variable", "pool")
    Normalize = _choices("image", "normalize")
    Device = _choices("dna-binary", "device")
    Calibrate = _choices("tabular", "calibrate")


def parameters_help() -> str:
    """Every recipe's declared hyper-parameters, one line each, for ``train --help``."""
    lines = ["Hyper-parameters of each recipe, set with --param NAME=VALUE:"]
    for recipe, params in DECLARED.items():
        lines.append(f"\n{recipe}:")
        for d in declarations(params):
            allowed = d.allowed()
            lines.append(
                f"  {d.name}: {d.spec.help} {allowed[0].upper()}{allowed[1:]}; "
                f"default {d.default!r}."
            )
    return escape("\n".join(lines))


TRAIN_HELP = (
    "Train a model from a recipe on your data and publish it to the store.\n\n" + parameters_help()
)
DATA, SPLIT, TRAINING = "Data", "Test split", "Training"
DNA, TABULAR, IMAGE = "DNA recipes", "Tabular recipe", "Image recipe"
CARD = "Model card"
TRAIN_EXAMPLES = examples(
    (
        "A binary DNA classifier from a sequence file and a label file",
        "train dna-binary --data sequences.txt --labels labels.txt --name primer-binding",
    ),
    (
        "A DNA classifier of three or more classes (lengths from the data)",
        "train dna-classify --data promoters.csv --target class --name promoter-class",
    ),
    (
        "A multi-label DNA model: one 0/1 column per label",
        "train dna-classify --data regions.csv --target enhancer,promoter,insulator",
    ),
    (
        "A regressor on the rows of a CSV that pass a filter",
        "train dna-regression --data utrs.csv.gz --sequence-col UTR --target growth_rate "
        "--filter 't0>100' --name yeast-utr",
    ),
    (
        "A random forest on a table, with 10-fold cross-validation",
        "train tabular --data tumours.csv --target class --cv 10",
    ),
    (
        "An image classifier from a folder of class sub-folders",
        "train image --data images/ --image-size 128 --name my-cells",
    ),
    (
        "An LSTM classifier with a lower learning rate and more patience",
        "train dna-binary --data sequences.txt --labels labels.txt --param arch=lstm "
        "--param lr=0.0005 --param patience=12",
    ),
)


def train(
    recipe: Annotated[
        Recipe,
        typer.Argument(
            metavar="RECIPE",
            show_choices=False,
            help=f"What to train: {', '.join(RECIPE_NAMES)}.",
        ),
    ],
    data: Annotated[
        Path,
        typer.Option(
            rich_help_panel=DATA,
            metavar="FILE",
            help="Training data: CSV/TSV/FASTA/text (.gz is fine) or an image folder.",
        ),
    ],
    name: Annotated[
        str | None, typer.Option(metavar="NAME", help="Model name (default: the recipe).")
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(
            rich_help_panel=DATA,
            metavar="COLUMN",
            help="Column holding the target; several comma-separated: one 0/1 column per label "
            "(multi-label, dna-classify).",
        ),
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option(rich_help_panel=DATA, metavar="FILE", help="File with one label per record."),
    ] = None,
    sequence_col: Annotated[
        str | None,
        typer.Option(rich_help_panel=DATA, metavar="COLUMN", help="Sequence column (CSV/TSV)."),
    ] = None,
    id_col: Annotated[
        str | None, typer.Option(rich_help_panel=DATA, metavar="COLUMN", help="Id column.")
    ] = None,
    split_col: Annotated[
        str | None,
        typer.Option(
            rich_help_panel=SPLIT,
            metavar="COLUMN",
            help="Column saying train/val/test (or T/V) per row.",
        ),
    ] = None,
    header: Annotated[
        str | None,
        typer.Option(
            rich_help_panel=DATA,
            metavar="NAMES",
            help="Column names for a file without header, comma-separated.",
        ),
    ] = None,
    features: Annotated[
        str | None,
        typer.Option(
            rich_help_panel=TABULAR,
            metavar="COLUMNS",
            help="Feature columns, comma-separated (default: all but target and id).",
        ),
    ] = None,
    feature_type: Annotated[
        Literal["int", "float"],
        typer.Option(rich_help_panel=TABULAR, help="Type of every feature."),
    ] = "float",
    feature_range: Annotated[
        str | None,
        typer.Option(rich_help_panel=TABULAR, metavar="MIN:MAX", help="Range of every feature."),
    ] = None,
    length: Annotated[
        int | None,
        typer.Option(
            rich_help_panel=DNA,
            metavar="NT",
            help="Sequence length (dna-binary: exact; dna-classify: longest, longer ones cut; "
            "dna-regression: longest). Default: from the data.",
        ),
    ] = None,
    pad_to: Annotated[
        int | None,
        typer.Option(
            rich_help_panel=DNA,
            metavar="NT",
            help="Pad or cut to this length (dna-variable; default: the longest in the data).",
        ),
    ] = None,
    image_size: Annotated[
        int | None,
        typer.Option(rich_help_panel=IMAGE, metavar="PIXELS", help="Side after resizing (image)."),
    ] = None,
    channels: Annotated[
        int | None,
        typer.Option(
            rich_help_panel=IMAGE, metavar="N", help="Colour channels: 1 (grey) or 3 (RGB)."
        ),
    ] = None,
    path_col: Annotated[
        str,
        typer.Option(
            rich_help_panel=DATA, metavar="COLUMN", help="Column of image paths (CSV data)."
        ),
    ] = "path",
    crop: Annotated[
        int | None,
        typer.Option(
            rich_help_panel=IMAGE,
            metavar="PIXELS",
            help="Train on random crops of this side at native size (0: off).",
        ),
    ] = None,
    tiles: Annotated[
        int | None,
        typer.Option(
            rich_help_panel=IMAGE,
            metavar="N",
            help="N x N crops per image (with --crop; 0: cover the image).",
        ),
    ] = None,
    crops_per_image: Annotated[
        int | None,
        typer.Option(
            rich_help_panel=IMAGE,
            metavar="N",
            help="Random crops per image per epoch (with --crop).",
        ),
    ] = None,
    normalize: Annotated[
        Normalize | None,
        typer.Option(rich_help_panel=IMAGE, help="Z-score each crop, or not (with --crop)."),
    ] = None,
    group_col: Annotated[
        str | None,
        typer.Option(
            rich_help_panel=SPLIT,
            metavar="COLUMN",
            help="Keep each group (plate, site) in one split part.",
        ),
    ] = None,
    bag_col: Annotated[
        str | None,
        typer.Option(
            rich_help_panel=DNA,
            metavar="COLUMN",
            help="Column naming each sequence's bag, e.g. isolate (dna-variable).",
        ),
    ] = None,
    pool: Annotated[
        Pool | None,
        typer.Option(
            rich_help_panel=DNA, help="How a bag's sequences combine (dna-variable with --bag-col)."
        ),
    ] = None,
    stride: Annotated[
        int | None,
        typer.Option(
            rich_help_panel=DNA,
            metavar="N",
            min=1,
            help="Stride of a k-mer conv stem (dna-variable; 1: none).",
        ),
    ] = None,
    filter: Annotated[
        str | None,
        typer.Option(
            rich_help_panel=DATA, metavar="CONDITION", help="Keep only rows like 't0>100'."
        ),
    ] = None,
    arch: Annotated[
        str | None,
        typer.Option(
            rich_help_panel=TRAINING,
            metavar="ARCH",
            help="Architecture (dna-classify: auto, positional or global; dna-binary: cnn or "
            "lstm; dna-variable: cnn or bilstm; tabular: rf or gb; default: the first).",
        ),
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option(
            rich_help_panel=TRAINING,
            metavar="N",
            min=1,
            help="Maximum epochs (neural recipes; default: the recipe's, 60).",
        ),
    ] = None,
    test_fraction: Annotated[
        float,
        typer.Option(
            rich_help_panel=SPLIT, metavar="FRACTION", help="Held-out share (random split)."
        ),
    ] = 0.2,
    seed: Annotated[
        int,
        typer.Option(
            rich_help_panel=TRAINING, metavar="N", help="Random seed (splits, weights, order)."
        ),
    ] = 0,
    device: Annotated[
        Device | None, typer.Option(rich_help_panel=TRAINING, help="Where to train.")
    ] = None,
    store: StoreOption = None,
    work_dir: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR", help="Folder for the live history.json and checkpoint.npz (--resume)."
        ),
    ] = None,
    label_names: Annotated[
        str | None,
        typer.Option(
            rich_help_panel=DATA,
            metavar="MAPPING",
            help="Rename classes, e.g. 2=benign,4=malignant.",
        ),
    ] = None,
    positive: Annotated[
        str | None,
        typer.Option(
            rich_help_panel=DATA,
            metavar="LABEL",
            help="The positive class of a binary target (default: 1, true, yes, + ...).",
        ),
    ] = None,
    calibrate: Annotated[
        Calibrate | None,
        typer.Option(rich_help_panel=TABULAR, help="Calibrate probabilities."),
    ] = None,
    class_weight: Annotated[
        str | None,
        typer.Option(
            rich_help_panel=TRAINING,
            metavar="WEIGHTS",
            help="Class weights: none, balanced, or LABEL=WEIGHT pairs like 0=1,1=4 "
            "(classifier recipes).",
        ),
    ] = None,
    init_from: Annotated[
        str | None,
        typer.Option(
            rich_help_panel=TRAINING,
            metavar="MODEL",
            help="Start from NAME@VERSION's weights (same recipe).",
        ),
    ] = None,
    search: Annotated[
        int | None,
        typer.Option(
            rich_help_panel=TRAINING,
            metavar="TRIALS",
            help="Optuna trials of hyper-parameter search (CV-scored).",
        ),
    ] = None,
    cv: Annotated[
        int | None,
        typer.Option(
            rich_help_panel=TRAINING,
            metavar="K",
            help="Also report K-fold CV on the non-test part.",
        ),
    ] = None,
    kmer_ridge: Annotated[
        bool | None,
        typer.Option(
            "--kmer-ridge/--no-kmer-ridge",
            rich_help_panel=DNA,
            help="Blend the CNN with a k-mer ridge regression (dna-regression; default: on).",
        ),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            rich_help_panel=TRAINING,
            metavar="NAME=VALUE",
            help="Set one of the recipe's hyper-parameters (listed above); repeatable.",
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            rich_help_panel=TRAINING,
            help="Continue the interrupted run from the checkpoint in its work dir "
            "(same data and options).",
        ),
    ] = False,
    card: Annotated[
        Path | None,
        typer.Option(
            rich_help_panel=CARD, metavar="FILE", help="Markdown file appended to the model card."
        ),
    ] = None,
    limits: Annotated[
        str | None,
        typer.Option(
            rich_help_panel=CARD,
            metavar="MARKDOWN",
            help="Card section: where not to use the model.",
        ),
    ] = None,
    citation: Annotated[
        str | None,
        typer.Option(rich_help_panel=CARD, metavar="MARKDOWN", help="Card section: what to cite."),
    ] = None,
    licence: Annotated[
        str | None,
        typer.Option(rich_help_panel=CARD, metavar="MARKDOWN", help="Card section: the licence."),
    ] = None,
) -> None:
    """Train a model from a recipe on your data and publish it to the store (see TRAIN_HELP)."""
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
        path_col=path_col,
        group_col=group_col,
        bag_col=bag_col,
        filter=filter,
        cv=cv,
        search=search,
        init_from=init_from,
        label_names=label_names,
        positive=positive,
        test_fraction=test_fraction,
        seed=seed,
        work_dir=work_dir,
        params=shortcut_params(
            recipe,
            {
                "length": length,
                "pad_to": pad_to,
                "image_size": image_size,
                "channels": channels,
                "crop": crop,
                "tiles": tiles,
                "crops_per_image": crops_per_image,
                "normalize": normalize,
                "pool": pool,
                "stride": stride,
                "arch": arch,
                "epochs": epochs,
                "calibrate": calibrate,
                "class_weight": class_weight,
                "device": device,
                "kmer_ridge": kmer_ridge,
            },
            parse_params(recipe, param or []),
        ),
        resume=resume,
        card=card,
        limits=limits,
        citation=citation,
        licence=licence,
    )
    support.checked_params(options)  # a bad hyper-parameter is refused before anything else
    models = open_store(store)
    live = work_dir or models.cache_dir.parent / "runs" / options.name
    console.print(f"per-epoch history (live): {live / 'history.json'}", highlight=False)
    outcome = support.run(options, models, progress=True)  # a bar, or lines without a terminal
    print_summary(console, outcome, models.uri)
