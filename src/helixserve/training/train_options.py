"""What ``helixserve train`` is given, and the hyper-parameters that makes for its recipe.

Contract: :class:`TrainOptions` holds the data, split, run and card options of one training run
and the recipe's hyper-parameters: :attr:`TrainOptions.params` (by their declared names, e.g.
from ``--param NAME=VALUE``) and the shortcut options of :data:`SHORTCUTS` (``--length``,
``--epochs``, ``--arch`` ...; ``None``: not given, the recipe's default holds), each meaning the
recipe's parameter of the same name or the one :data:`RENAMED` names. :func:`recipe_params`
merges them; a shortcut the recipe does not take, one set twice, or an unknown recipe raises
:class:`~helixserve.errors.HelixError`. The values are checked when the recipe is built
(:mod:`helixserve.training.recipe_params`), or at once with :func:`checked_params`.
Plain Python: no torch, numpy or scikit-learn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helixserve.errors import HelixError
from helixserve.training.params import declarations
from helixserve.training.recipe_params import DECLARED

TRAIN_THREADS = 2


@dataclass
class TrainOptions:
    """What ``helixserve train`` was given. The recipe's hyper-parameters are :attr:`params`
    (by their declared names) plus the :data:`SHORTCUTS` that are not ``None``."""

    recipe: str
    data: Path
    name: str
    target: str | None = None
    labels: Path | None = None
    sequence_col: str | None = None
    id_col: str | None = None
    split_col: str | None = None
    header: list[str] | None = None
    features: list[str] | None = None
    feature_type: str = "float"
    feature_range: str | None = None
    path_col: str = "path"
    group_col: str | None = None
    bag_col: str | None = None
    filter: str | None = None
    test_fraction: float = 0.2
    seed: int = 0
    work_dir: Path | None = None
    cv: int | None = None
    search: int | None = None
    init_from: str | None = None
    label_names: str | None = None
    description: str | None = None
    card_text: str = ""
    card: Path | None = None  # a Markdown file appended to the card
    limits: str | None = None
    citation: str | None = None
    licence: str | None = None
    threads: int = TRAIN_THREADS
    resume: bool = False  # continue from the checkpoint in the work dir
    params: dict[str, Any] = field(default_factory=dict)  # --param NAME=VALUE, parsed
    # shortcuts for hyper-parameters (None: the recipe's default); see SHORTCUTS
    length: int | None = None
    pad_to: int | None = None
    image_size: int | None = None
    channels: int | None = None
    crop: int | None = None
    tiles: int | None = None
    crops_per_image: int | None = None
    normalize: str | None = None
    depth: int | None = None
    pool: str | None = None
    stride: int | None = None
    arch: str | None = None
    epochs: int | None = None
    lr: float | None = None
    patience: int | None = None
    device: str | None = None
    calibrate: str | None = None
    class_weight: str | None = None
    kmer_ridge: bool | None = None


# option -> hyper-parameter of the same name, except where RENAMED says otherwise
SHORTCUTS = (
    "length",
    "pad_to",
    "image_size",
    "channels",
    "crop",
    "tiles",
    "crops_per_image",
    "normalize",
    "depth",
    "pool",
    "stride",
    "arch",
    "epochs",
    "lr",
    "patience",
    "device",
    "calibrate",
    "class_weight",
    "kmer_ridge",
)
RENAMED = {
    ("dna-regression", "length"): "max_length",
    ("image", "image_size"): "size",
    ("tabular", "arch"): "model",
}


def recipe_params(options: TrainOptions) -> dict[str, Any]:
    """The hyper-parameters ``options`` give its recipe: :attr:`TrainOptions.params` and the
    shortcut options set; a shortcut the recipe does not take, or one given twice, is refused."""
    declared = DECLARED.get(options.recipe)
    if declared is None:
        raise HelixError(
            f"unknown recipe {options.recipe!r}; the recipes are {', '.join(DECLARED)}."
        )
    names = [d.name for d in declarations(declared)]
    chosen: dict[str, Any] = {}
    for option in SHORTCUTS:
        value = getattr(options, option)
        if value is None:
            continue
        name = RENAMED.get((options.recipe, option), option)
        flag = "--" + option.replace("_", "-")
        if name not in names:
            raise HelixError(
                f"{flag} is not an option of the {options.recipe} recipe; leave it out (its "
                f"parameters are {', '.join(names)}: set them with --param NAME=VALUE)."
            )
        if name in options.params:
            raise HelixError(f"{flag} and --param {name}=... both set {name}; keep one of them.")
        chosen[name] = value
    return chosen | options.params


def checked_params(options: TrainOptions) -> dict[str, Any]:
    """:func:`recipe_params`, each value checked against the recipe's declarations."""
    params = recipe_params(options)
    DECLARED[options.recipe].build(params)
    return params
