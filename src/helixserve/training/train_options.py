"""What ``helixserve train`` is given, and how its options become the recipe's parameters.

Contract: :class:`TrainOptions` holds the data, split, run and card options of one training run
and the recipe's hyper-parameters, :attr:`TrainOptions.params`, by their declared names
(:mod:`helixserve.params.recipes`), and optionally :attr:`TrainOptions.blocks`, a block
stack (plain dicts, :mod:`helixserve.training.blocks_torch`) that replaces the network of a
neural recipe. :func:`checked_params` checks them (unknown recipe,
unknown name or bad value: :class:`~helixserve.errors.HelixError`). The CLI's shortcut options
(:data:`SHORTCUTS`: ``--length``, ``--epochs``, ``--arch`` ...) each set the recipe's parameter
of the same name, or the one :data:`RENAMED` names; :func:`shortcut_params` maps them and
refuses a shortcut the recipe does not take or one that ``--param`` sets too. Plain Python: no
torch, numpy or scikit-learn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helixserve.errors import HelixError
from helixserve.params.declare import declarations
from helixserve.params.recipes import DECLARED

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
    positive: str | None = None  # the positive class of a binary target
    description: str | None = None
    card_text: str = ""
    card: Path | None = None  # a Markdown file appended to the card
    limits: str | None = None
    citation: str | None = None
    licence: str | None = None
    threads: int = TRAIN_THREADS
    resume: bool = False  # continue from the checkpoint in the work dir
    params: dict[str, Any] = field(default_factory=dict)  # by their declared names
    blocks: list[dict[str, Any]] | None = None  # a block stack replacing the recipe's network


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
    ("dna-classify", "length"): "max_length",
    ("dna-regression", "length"): "max_length",
    ("image", "image_size"): "size",
    ("tabular", "arch"): "model",
}


def _declared_names(recipe: str) -> list[str]:
    declared = DECLARED.get(recipe)
    if declared is None:
        raise HelixError(f"unknown recipe {recipe!r}; the recipes are {', '.join(DECLARED)}.")
    return [d.name for d in declarations(declared)]


def shortcut_params(recipe: str, given: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """The shortcut options in ``given`` (by option name; ``None``: not given) as ``recipe``'s
    hyper-parameters, with ``params`` (``--param``); a shortcut the recipe does not take, or one
    that ``params`` sets too, is refused."""
    names = _declared_names(recipe)
    chosen: dict[str, Any] = {}
    for option, value in given.items():
        if option not in SHORTCUTS:
            raise ValueError(f"{option} is not a shortcut option")
        if value is None:
            continue
        name = RENAMED.get((recipe, option), option)
        flag = "--" + option.replace("_", "-")
        if name not in names:
            raise HelixError(
                f"{flag} is not an option of the {recipe} recipe; leave it out (its "
                f"parameters are {', '.join(names)}: set them with --param NAME=VALUE)."
            )
        if name in params:
            raise HelixError(f"{flag} and --param {name}=... both set {name}; keep one of them.")
        chosen[name] = value
    return chosen | params


def checked_params(options: TrainOptions) -> dict[str, Any]:
    """:attr:`TrainOptions.params`, each checked against the recipe's declarations."""
    _declared_names(options.recipe)
    DECLARED[options.recipe].build(options.params)
    return options.params
