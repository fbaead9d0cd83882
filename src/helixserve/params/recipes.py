"""Which hyper-parameters each recipe takes: the one place recipe names and parameters are declared.

Contract: one frozen :class:`~helixserve.params.declare.Params` dataclass per recipe, whose
:attr:`~helixserve.params.declare.Params.recipe` is the recipe's registered name, and
:data:`DECLARED` (name -> parameters, in the order ``helixserve train`` lists them). The
estimator classes (:data:`helixserve.training.recipes.RECIPES`) take their names and
parameters from here; this module is plain Python (no torch, numpy or scikit-learn), so the
CLI's ``--help`` and a web form can read it without the ``train`` extra. Values are checked
when a recipe is built; see :mod:`helixserve.params.declare` for the format and the messages.
:func:`parse_params` reads ``--param NAME=VALUE`` assignments into values of the declared types.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from helixserve.params.declare import (
    InvalidParameter,
    Param,
    Params,
    Rule,
    declarations,
    param,
)

BIG = 1_000_000


def _class_weight_ok(text: str) -> bool:
    """``none``, ``balanced`` or ``LABEL=WEIGHT,...`` with positive weights, no label twice
    (that the labels exist is checked against the targets when fitting)."""
    if text.strip().lower() in ("none", "balanced"):
        return True
    pairs = [item.partition("=") for item in text.split(",")]
    labels = [label.strip() for label, _, _ in pairs]
    try:
        weights = [float(weight) for _, _, weight in pairs]
    except ValueError:
        return False
    well_formed = all(sep and label for (_, sep, _), label in zip(pairs, labels, strict=True))
    positive = all(math.isfinite(w) and w > 0 for w in weights)
    return well_formed and positive and len(set(labels)) == len(labels)


CLASS_WEIGHT = Rule(
    _class_weight_ok,
    "'none', 'balanced' or LABEL=WEIGHT pairs with positive weights like '0=1,1=4'",
)
CLASS_WEIGHT_HELP = "Weights of the classes in the loss."


@dataclass(frozen=True)
class TorchParams(Params):
    """What every PyTorch recipe takes (recipes re-declare a field to change its default)."""

    epochs: int = param(
        60, "Maximum epochs (early stopping usually stops sooner).", low=1, high=BIG
    )
    batch_size: int = param(32, "Examples per training step.", low=1, high=BIG)
    lr: float = param(1e-3, "Adam learning rate.", low=0, high=10, open_low=True)
    patience: int = param(
        8, "Epochs without a better validation loss before stopping.", low=1, high=BIG
    )
    device: Literal["cpu", "cuda"] = param("cpu", "Where to train.")


@dataclass(frozen=True)
class DnaClassifyParams(TorchParams):
    recipe = "dna-classify"

    max_length: int = param(
        0,
        "Longest sequence in nt: longer ones cut, with a warning, and refused when served "
        "(0: the longest in the data).",
        low=0,
        high=BIG,
    )
    ambiguity: Literal["encode", "refuse"] = param(
        "encode",
        "N and IUPAC codes: encoded as base probabilities (N = 0.25 each), or refused.",
    )
    arch: Literal["auto", "positional", "global"] = param(
        "auto",
        "Network: positional (pools windows along the sequence), global (one max-pool), or "
        "auto (the better of both on validation).",
    )
    bins: int = param(8, "Windows along the sequence of the positional network.", low=2, high=BIG)
    filters: int = param(64, "Convolution filters.", low=1, high=4096)
    kernel: int = param(12, "Filter width in nt.", low=1, high=1024)
    hidden: int = param(32, "Dense units.", low=1, high=4096)
    dropout: float = param(0.2, "Dropout rate.", low=0, high=0.99)
    class_weight: str | None = param(None, CLASS_WEIGHT_HELP, rule=CLASS_WEIGHT)
    refit: bool = param(
        False,
        "Then retrain on training + validation rows for the best epoch count.",
    )

    def layout(self, length: int, arch: str) -> tuple[int, int]:
        """``(padding, window)`` of the network for one-hot inputs ``length`` wide: the
        convolution is padded so that every window touching a base counts (``kernel - 1`` each
        side, plus ``extra``); the positional network max-pools windows of ``window`` positions,
        where the padding is chosen so that the pool drops none of the positions that touch a
        base; the global network (``window`` 0) pools all of them at once."""
        base = length + self.kernel - 1  # outputs with padding kernel - 1: each touches a base
        if arch == "global":
            return self.kernel - 1, 0
        window = -(-base // self.bins)
        extra = next(e for e in range(window) if (base + 2 * e) % window <= e)
        return self.kernel - 1 + extra, window


@dataclass(frozen=True)
class DnaBinaryParams(TorchParams):
    recipe = "dna-binary"

    length: int = param(
        0,
        "Exact sequence length in nt (0: from the data; several lengths: padded to the longest).",
        low=0,
        high=BIG,
    )
    arch: Literal["cnn", "lstm"] = param("cnn", "Network: a CNN, or the seed's (Bi)LSTM.")
    alphabet: Literal["ACGT", "ACGTN", "IUPAC"] = param(
        "ACGT",
        "Letters a sequence may hold (N and IUPAC codes: encoded as base probabilities).",
    )
    filters: int = param(64, "CNN filters.", low=1, high=4096)
    kernel: int = param(12, "CNN filter width in nt.", low=1, high=BIG)
    pool: int = param(0, "CNN max-pool width (0: one global max-pool).", low=0, high=BIG)
    hidden: int = param(32, "CNN dense units.", low=1, high=4096)
    units: int = param(32, "LSTM units per direction.", low=1, high=4096)
    bidirectional: bool = param(True, "LSTM reads both directions.")
    dropout: float = param(0.2, "Dropout rate.", low=0, high=0.99)
    class_weight: str | None = param(None, CLASS_WEIGHT_HELP, rule=CLASS_WEIGHT)


@dataclass(frozen=True)
class DnaRegressionParams(TorchParams):
    recipe = "dna-regression"

    max_length: int = param(
        50, "Longest sequence in nt (shorter: padded on the 5' side).", low=1, high=BIG
    )
    flank: int = param(10, "All-zero positions added each side.", low=0, high=BIG)
    filters: int = param(128, "Filters of each of the 3 conv layers.", low=1, high=4096)
    kernel: int = param(13, "Filter width in nt.", low=1, high=BIG)
    dropout: float = param(0.15, "Dropout rate.", low=0, high=0.99)
    dense: int = param(64, "Dense units.", low=1, high=4096)
    kmer_ridge: bool = param(True, "Blend the CNN with a k-mer ridge regression.")
    k_max: int = param(6, "Longest k-mer of the ridge regression.", low=1, high=8)
    positional: bool = param(True, "The ridge regression also reads the one-hot positions.")


@dataclass(frozen=True)
class DnaVariableParams(TorchParams):
    recipe = "dna-variable"

    pad_to: int = param(
        0,
        "Pad to this many nt, cutting longer ones (0: the longest in the data).",
        low=0,
        high=BIG,
    )
    arch: Literal["cnn", "bilstm"] = param("cnn", "Network: a k-mer CNN, or the seed's BiLSTM.")
    embed: int = param(8, "Embedding size of a base.", low=1, high=4096)
    units: int = param(32, "BiLSTM units per direction.", low=1, high=4096)
    filters: int = param(64, "CNN filters.", low=1, high=4096)
    kernel: int = param(12, "CNN filter width in nt.", low=1, high=BIG)
    stride: int = param(
        1, "Stride of a k-mer conv stem before the BiLSTM (1: none).", low=1, high=BIG
    )
    dropout: float = param(0.18, "Dropout rate.", low=0, high=0.99)
    lr: float = param(2e-3, "Adam learning rate.", low=0, high=10, open_low=True)
    patience: int = param(
        5, "Epochs without a better validation loss before stopping.", low=1, high=BIG
    )
    class_weight: str | None = param("balanced", CLASS_WEIGHT_HELP, rule=CLASS_WEIGHT)
    pool: Literal["", "max", "noisy-or", "lse"] = param(
        "", "Multiple-instance pooling of a bag ('': none)."
    )
    bag_batch: int = param(8, "Bags per training step (with pool).", low=1, high=BIG)

    def check_together(self) -> None:
        if self.pad_to and self.pad_to % self.stride:
            raise self.refuse("stride", f"a divisor of 'pad_to' ({self.pad_to})")


@dataclass(frozen=True)
class TabularParams(Params):
    recipe = "tabular"

    model: Literal["rf", "gb"] = param("rf", "A random forest, or gradient boosting.")
    n_estimators: int = param(500, "Trees of the forest, or boosting iterations.", low=1, high=BIG)
    max_depth: int | None = param(None, "Deepest tree (None: no limit).", low=1, high=BIG)
    min_samples_leaf: int = param(1, "Fewest rows in a forest leaf.", low=1, high=BIG)
    max_features: Literal["sqrt", "log2"] | float = param(
        "sqrt",
        "Features tried per forest split.",
        low=0,
        high=1,
        open_low=True,
    )
    class_weight: str | None = param(None, CLASS_WEIGHT_HELP, rule=CLASS_WEIGHT)
    calibrate: Literal["sigmoid", "isotonic"] | None = param(
        None, "Calibrate probabilities (5-fold, inside the training rows)."
    )


@dataclass(frozen=True)
class ImageParams(TorchParams):
    recipe = "image"

    size: int = param(
        128, "Image side in pixels (resized to it, or native with crop).", low=1, high=65536
    )
    channels: Literal[1, 3] = param(1, "Colour channels: 1 (grey) or 3 (RGB).")
    augment: bool = param(True, "Flip, rotate (and with crop, jitter intensity) while training.")
    dropout: float = param(0.3, "Dropout rate.", low=0, high=0.99)
    class_weight: str | None = param("balanced", CLASS_WEIGHT_HELP, rule=CLASS_WEIGHT)
    crop: int = param(
        0, "Train on random crops of this side at native size (0: off).", low=0, high=65536
    )
    tiles: int = param(
        0, "Crops per side of a served image (with crop; 0: cover it).", low=0, high=1000
    )
    crops_per_image: int = param(
        32, "Random crops per image per epoch (with crop).", low=1, high=BIG
    )
    normalize: Literal["per-image", "none"] = param(
        "per-image", "Z-score each crop, or not (with crop)."
    )
    depth: Literal[2, 3, 4] = param(2, "Conv blocks (with crop).")

    def check_together(self) -> None:
        if self.crop > self.size:
            raise self.refuse("crop", f"0 (the whole image) or at most 'size' ({self.size})")


DECLARED: dict[str, type[Params]] = {
    p.recipe: p
    for p in (
        DnaClassifyParams,
        DnaBinaryParams,
        DnaRegressionParams,
        DnaVariableParams,
        TabularParams,
        ImageParams,
    )
}
RECIPE_NAMES = tuple(DECLARED)


def parse_params(recipe: str, assignments: list[str]) -> dict[str, Any]:
    """``["lr=0.003", "arch=lstm"]`` (``--param``) as values of ``recipe``'s declared
    parameters, each read as its type and checked; every refused one is named (one
    :class:`InvalidParameter`, a line for each after the first)."""
    declared = {d.name: d for d in declarations(DECLARED[recipe])}
    values: dict[str, Any] = {}
    refused: list[InvalidParameter] = []
    for text in assignments:
        try:
            name, value = _assignment(recipe, declared, text, values)
        except InvalidParameter as err:
            refused.append(err)
            continue
        values[name] = value
    if len(refused) > 1:
        lines = "\n".join(f"  {err}" for err in refused)
        raise InvalidParameter(f"{len(refused)} parameters are refused:\n{lines}")
    if refused:
        raise refused[0]
    return values


def _assignment(
    recipe: str, declared: dict[str, Param], text: str, values: dict[str, Any]
) -> tuple[str, Any]:
    """One ``NAME=VALUE``: the name and its checked value."""
    name, sep, value = (part.strip() for part in text.partition("="))
    if not sep or not name:
        raise InvalidParameter(f"--param must look like NAME=VALUE, got {text!r}.")
    if name not in declared:
        raise InvalidParameter(
            f"{recipe} has no parameter {name!r}; its parameters are {', '.join(declared)}.",
            name=name,
        )
    if name in values:
        raise InvalidParameter(f"--param {name} is given twice; keep one of them.", name=name)
    parsed = declared[name].parse(value)
    declared[name].check(parsed)
    return name, parsed
