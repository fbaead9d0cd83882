"""What ``helixserve train`` does, as a function the CLI and the zoo build call.

Contract: :func:`run` builds the recipe named in :class:`TrainOptions` from the registry
(:data:`~helixserve.training.recipes.RECIPES`) with the hyper-parameters the options give
(:func:`~helixserve.training.train_options.checked_params`: ``--param NAME=VALUE`` and the
shortcut options, checked against the recipe's declarations before any data is read), loads
and validates the data, splits it (split column, or random with the seed), trains, publishes,
and returns the :class:`~helixserve.training.publish.Outcome` plus the first refused records.
Unknown recipes, options that do not fit the recipe and unusable data raise
:class:`~helixserve.errors.HelixError` with the fix.

- ``class_weight`` (the classifier recipes): see :mod:`helixserve.training.classweights`.
- ``target`` names one column, or several comma-separated (``enhancer,promoter``): a
  multi-label target, one 0/1 column per label (``dna-classify``).
- Before the split, the recipe decides what the data decide
  (:meth:`~helixserve.training.recipes.base.Recipe.adapt`, e.g. the input length); its notes
  reach the :class:`~helixserve.training.publish.Outcome`.
- Neural recipes checkpoint every epoch into ``work_dir/checkpoint.npz`` together with the run's
  :func:`run_fingerprint` (data sha256 and the options that change training); ``resume``
  continues from it, after checking it (no checkpoint, or one started with other data or options:
  refused before any training). The published manifest's lineage says how the version was made:
  ``trained``; ``init-from`` with the parent ``name@version`` (an alias resolved); ``resume`` with
  ``resumed_from_epoch`` (and the parent, when the run was started ``--init-from``).
- ``on_epoch`` is called after every epoch of a neural recipe with the history so far, once that
  epoch's checkpoint is written (an exception it raises stops training there, nothing published);
  ``device`` overrides the recipe's ``device`` (where it trains, not what: it is not part of the
  fingerprint, so a run started on a GPU can be resumed on a CPU and back).
- ``blocks`` (a block stack) replaces a neural recipe's network (checked before any data is
  read; the ``tabular`` recipe refuses it); it is part of the fingerprint.
- ``limits``, ``citation``, ``licence`` become ``## Limits``, ``## Citation``, ``## Licence``
  sections of the card, followed by the Markdown file ``card`` (:func:`card_sections`).
"""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import operator
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from helixserve.errors import HelixError
from helixserve.inputs.images import ImageSchema
from helixserve.inputs.sequence import SequenceSchema
from helixserve.inputs.tabular import Feature
from helixserve.inputs.textio import iter_lines, opened
from helixserve.params.positive import binary_classes
from helixserve.store.manifest import Lineage
from helixserve.store.store import ModelStore
from helixserve.training import checkpoint as checkpoints
from helixserve.training.cv import cross_validate, kmer_ridge_cv
from helixserve.training.data import (
    Dataset,
    Split,
    Task,
    load_images,
    load_sequences,
    load_table,
    split,
    subset,
)
from helixserve.training.loop import History
from helixserve.training.publish import Outcome, target_task, train_and_publish
from helixserve.training.recipes import RECIPES, DnaRegression, Recipe, TabularForest
from helixserve.training.recipes.torch_base import TorchRecipe
from helixserve.training.search import search, with_params
from helixserve.training.train_options import TRAIN_THREADS, TrainOptions, checked_params

CARD_SECTIONS = {"limits": "Limits", "citation": "Citation", "licence": "Licence"}
CHECKPOINT = "checkpoint.npz"  # in the work dir (where train_and_publish has the loop write it)
__all__ = [
    "TRAIN_THREADS",
    "TrainOptions",
    "checked_params",
    "parse_filter",
    "recipe_and_data",
    "run",
]


def run(
    options: TrainOptions,
    store: ModelStore,
    *,
    progress: bool = False,
    on_epoch: Callable[[History], None] | None = None,
    device: str | None = None,
) -> Outcome:
    """Train and publish; see the module contract."""
    torch.set_num_threads(options.threads)  # fixed, so a seed gives the same model anywhere
    recipe, data = recipe_and_data(options)
    if device is not None and "device" in recipe.get_params():
        recipe.set_params(device=device)  # where it trains: not in the fingerprint
    _check_device(recipe)
    if options.label_names and data.label_columns is not None:
        raise HelixError(
            "--label-names renames classes; a multi-label target's labels are its column "
            "names, so rename the columns instead."
        )
    data.targets = rename_labels(data.targets, options.label_names)
    task = _task(recipe, data)
    data.positive = positive_class(recipe, task, data, options.positive)
    recipe.adapt(data)  # e.g. the input length: before cross-validation and search use it
    card = options.card_text + "\n" + card_sections(options)  # a bad --card fails before training
    work_dir = options.work_dir or store.cache_dir.parent / "runs" / options.name
    fingerprint = run_fingerprint(options, data)
    resumed = _resumed_epoch(recipe, work_dir, fingerprint) if options.resume else None
    parent = _start_from(recipe, store, options.init_from) if options.init_from else None
    parts = split(data, task=task, seed=options.seed, test_fraction=options.test_fraction)
    recipe, cv_table = _tuned(options, recipe, data, np.concatenate([parts.train, parts.val]))
    if isinstance(recipe, TorchRecipe):
        recipe.fingerprint, recipe.resume = fingerprint, options.resume
    outcome = train_and_publish(
        recipe,
        data,
        parts,
        store,
        name=options.name,
        seed=options.seed,
        progress=progress,
        description=options.description or f"{recipe.name} model trained on {options.data.name}.",
        work_dir=work_dir,
        card_extra=card + cv_table,
        lineage=_lineage(parent, resumed),
        on_epoch=on_epoch,
    )
    outcome.cv_table = cv_table
    outcome.held_out = held_out(options, data, parts, task)
    return outcome


def held_out(options: TrainOptions, data: Dataset, parts: Split, task: str) -> str:
    """Which rows the published metrics are computed on, in words (for the summary)."""
    rows, total = len(parts.test), len(data)
    if data.split_labels is not None:
        how = f"the rows that column {options.split_col!r} holds out"
    elif data.groups is not None:
        grouped = options.group_col or options.bag_col
        how = f"whole groups of {grouped!r}, drawn at random with seed {options.seed}"
    else:
        stratified = "" if task == "regression" else ", stratified by class"
        how = f"{rows / max(total, 1):.0%}, drawn at random with seed {options.seed}{stratified}"
    said = (
        f"the internal test split: {rows:,} of the {total:,} rows ({how}), never used to train "
        "the model or to stop its training"
    )
    if len(parts.external):
        said += f"; external_* metrics: the {len(parts.external):,} external rows"
    return said


def _check_device(recipe: Recipe) -> None:
    if recipe.get_params().get("device") == "cuda" and not torch.cuda.is_available():
        raise HelixError("--device cuda was asked for, but this machine has no CUDA GPU.")


def _task(recipe: Recipe, data: Dataset) -> Task:
    task = target_task(recipe, data)
    if task == "multilabel" and not getattr(recipe, "takes_multilabel", False):
        raise HelixError(
            f"{recipe.name} learns one target column, but --target names "
            f"{len(data.label_columns or [])} ({', '.join(data.label_columns or [])}); use "
            "dna-classify for several label columns (multi-label)."
        )
    classes = sorted(set(data.targets))
    if recipe.binary_only and task != "binary":
        raise HelixError(
            f"{recipe.name} is a binary recipe, but the targets hold {len(classes)} classes "
            f"({', '.join(classes[:10])}); use a two-class target, or dna-classify for three "
            "or more classes."
        )
    return task


def positive_class(recipe: Recipe, task: str, data: Dataset, positive: str | None) -> str | None:
    """The positive class of a binary target (named, or by convention; else refused, see
    :mod:`helixserve.params.positive`); ``None`` for other tasks, which take no ``positive``."""
    if task == "binary":
        return binary_classes(set(data.targets), positive)[1]
    if positive is not None:
        what = (
            f"the {recipe.name} recipe predicts a number"
            if task == "regression"
            else f"these targets hold {len(set(data.targets))} classes"
        )
        raise HelixError(
            f"--positive names the positive class of a binary target, but {what}; leave it out."
        )
    return None


def _tuned(options: TrainOptions, recipe: Recipe, data: Dataset, rows: Any) -> tuple[Recipe, str]:
    """``--search`` (the recipe with the best hyper-parameters) and ``--cv``: their tables."""
    cv_table = ""
    if options.search is not None:
        if options.search < 1:
            raise HelixError(f"--search needs at least 1 trial, got {options.search}.")
        found = search(
            recipe,
            subset(data, rows),
            trials=options.search,
            folds=options.cv or 3,
            seed=options.seed,
        )
        recipe, cv_table = with_params(recipe, found.best), found.table + "\n"
    if options.cv is not None:
        cv_table += _cross_validation(options, recipe, data, rows)
    return recipe, cv_table


# where the files are (their bytes are in the data sha256) and card text: not in the fingerprint
NOT_FINGERPRINTED = frozenset(
    {"resume", "work_dir", "data", "labels", "description", "card_text", "card", *CARD_SECTIONS}
)


def run_fingerprint(options: TrainOptions, data: Dataset) -> dict[str, Any]:
    """What a run is started with, kept in its checkpoint: a resumed run must match it. The
    options that do not change training (where files are, card text) are left out; each
    hyper-parameter given is one entry, ``param NAME`` (shown as ``--param NAME`` if it differs)."""
    chosen = {k: v for k, v in asdict(options).items() if k not in NOT_FINGERPRINTED}
    for name in ("blocks", "positive"):
        if chosen.get(name) is None:
            chosen.pop(name, None)  # runs without them keep the fingerprint they had
    chosen |= {f"param {k}": v for k, v in chosen.pop("params").items()}
    body = json.loads(json.dumps(chosen, sort_keys=True, default=str))
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    return {"data_sha256": data.sha256, "options": body, "options_sha256": digest}


def _resumed_epoch(recipe: Recipe, work_dir: Path, fingerprint: dict[str, Any]) -> int:
    """Check the checkpoint ``--resume`` will continue (before any training); its epoch."""
    if not isinstance(recipe, TorchRecipe):
        raise HelixError(
            f"--resume continues the epochs of a neural recipe; the {recipe.name} recipe trains "
            "in one step, so run it again without --resume."
        )
    path = work_dir / CHECKPOINT
    meta = checkpoints.read_meta(path)
    checkpoints.check_fingerprint(path, meta, fingerprint)
    return int(meta["epoch"])


def _lineage(parent: str | None, resumed: int | None) -> Lineage:
    if resumed is not None:
        return Lineage(how="resume", parent=parent, details={"resumed_from_epoch": resumed})
    if parent is not None:
        return Lineage(how="init-from", parent=parent)
    return Lineage(how="trained")


def card_sections(options: TrainOptions) -> str:
    """``--limits``/``--citation``/``--licence`` as card sections, then the ``--card`` file."""
    given = {k: getattr(options, k) for k in CARD_SECTIONS if getattr(options, k) is not None}
    blank = [f"--{k}" for k, v in given.items() if not v.strip()]
    if blank:
        raise HelixError(f"{', '.join(blank)} is empty; give the text, or leave the option out.")
    text = _card_file(options.card) if options.card is not None else ""
    twice = [f"--{k}" for k in given if f"## {CARD_SECTIONS[k]}" in text.splitlines()]
    if twice:
        raise HelixError(
            f"{', '.join(twice)} and the --card file {options.card} both give the section "
            f"'## {CARD_SECTIONS[twice[0][2:]]}'; keep one of them."
        )
    sections = "".join(f"## {CARD_SECTIONS[k]}\n\n{v.strip()}\n\n" for k, v in given.items())
    return sections + (text.rstrip() + "\n\n" if text.strip() else "")


def _card_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise HelixError(
            f"--card {path}: no such file; give a Markdown file to append to the model card."
        ) from None
    except UnicodeDecodeError:
        raise HelixError(
            f"--card {path} is not UTF-8 text; save the Markdown file as UTF-8."
        ) from None
    except OSError as err:
        raise HelixError(f"--card {path} cannot be read: {err.strerror}.") from None


def _start_from(recipe: Recipe, store: ModelStore, ref: str) -> str:
    """Load an earlier bundle's weights into ``recipe`` (the yeast tutorial's "keep building");
    return the bundle's ``name@version`` (an alias resolved)."""
    bundle = store.pull(ref)
    recipe_file, weights = bundle.path / "recipe.json", bundle.path / "weights.npz"
    lineage = bundle.manifest.lineage
    if lineage is not None and lineage.how == "quantize" and not weights.is_file():
        raise HelixError(
            f"{bundle.label} is an int8 version of {lineage.parent} and holds no training "
            f"weights; continue from {lineage.parent}."
        )
    if not recipe_file.is_file() or not weights.is_file():
        raise HelixError(
            f"{bundle.label} holds no training weights (it was imported or trained "
            "by a recipe that cannot continue); train from scratch."
        )
    earlier = json.loads(recipe_file.read_text())
    if earlier.get("recipe") != recipe.name:
        raise HelixError(
            f"{bundle.label} was trained with the {earlier.get('recipe')} recipe, "
            f"not {recipe.name}."
        )
    recipe.start_from(weights.read_bytes())
    return bundle.label


def _cross_validation(options: TrainOptions, recipe: Recipe, data: Dataset, index: Any) -> str:
    """k-fold CV inside the non-test part, as a Markdown table for the card and the console."""
    if options.cv is None or options.cv < 2:
        raise HelixError(f"--cv needs at least 2 folds, got {options.cv}.")
    try:
        result = cross_validate(
            lambda: copy.deepcopy(recipe), subset(data, index), folds=options.cv, seed=options.seed
        )
    except ValueError as err:  # e.g. more folds than members of a class
        raise HelixError(
            f"{options.cv}-fold cross-validation is not possible here: {err}."
        ) from None
    common = set.intersection(*(set(fold) for fold in result.folds))
    rows = "\n".join(
        f"| {metric} | {result.mean(metric):.4f} | {result.std(metric):.4f} |"
        for metric in sorted(common)
    )
    if isinstance(recipe, DnaRegression):
        baseline = kmer_ridge_cv(subset(data, index), folds=options.cv, seed=options.seed)
        rows += (
            f"\n| r2 of the k-mer (k=1..6) ridge baseline, same folds | "
            f"{baseline.mean('r2'):.4f} | {baseline.std('r2'):.4f} |"
        )
    return (
        f"## {options.cv}-fold cross-validation (train + validation part)\n\n"
        f"| metric | mean | sd |\n|---|---|---|\n{rows}\n"
    )


def recipe_and_data(options: TrainOptions) -> tuple[Recipe, Dataset]:
    """The recipe ``options`` name, with its hyper-parameters (checked first), and its data."""
    params = checked_params(options)  # bad values are refused before any data is read
    recipe_class = RECIPES[options.recipe]
    if issubclass(recipe_class, TabularForest):
        tabular = TabularForest(_features(options), **params)
        if options.blocks is not None:
            tabular.use_blocks(options.blocks)  # refused, before the table is read
        return tabular, _table(options, tabular)
    recipe = recipe_class(**params)
    if options.blocks is not None:
        recipe.use_blocks(options.blocks)  # checked before any data is read
    if recipe.learns_from_bags() != bool(options.bag_col):
        raise HelixError(
            "multiple-instance training needs both --bag-col (the column naming each sequence's "
            "bag, e.g. isolate_id) and --pool (max, noisy-or or lse)."
        )
    if isinstance(recipe.reading_schema(), SequenceSchema):
        return recipe, _sequences(options, recipe)
    return recipe, _images(options, recipe)


def target_columns(target: str | None) -> str | list[str] | None:
    """``--target``: one column, or (comma-separated) the label columns of a multi-label
    target."""
    if target is None or "," not in target:
        return target
    return [name.strip() for name in target.split(",")]


def _sequences(options: TrainOptions, recipe: Recipe) -> Dataset:
    schema = recipe.reading_schema()
    if not isinstance(schema, SequenceSchema):
        raise HelixError(f"recipe {recipe.name} does not read sequences.")
    return load_sequences(
        options.data,
        schema,
        target_col=target_columns(options.target),
        labels_file=options.labels,
        sequence_col=options.sequence_col,
        id_col=options.id_col,
        split_col=options.split_col,
        where=parse_filter(options.filter),
        group_col=options.bag_col or options.group_col,
    )


def _images(options: TrainOptions, recipe: Recipe) -> Dataset:
    schema = recipe.input_schema()
    if not isinstance(schema, ImageSchema):
        raise HelixError(f"recipe {recipe.name} does not read images.")
    return load_images(
        options.data,
        schema,
        target_col=options.target,
        path_col=options.path_col,
        split_col=options.split_col,
        group_col=options.group_col,
        where=parse_filter(options.filter),
    )


def rename_labels(targets: list[str], mapping: str | None) -> list[str]:
    """Apply ``--label-names 2=benign,4=malignant`` to the targets."""
    if not mapping:
        return targets
    pairs = [item.partition("=") for item in mapping.split(",")]
    if any(not sep or not old.strip() or not new.strip() for old, sep, new in pairs):
        raise HelixError(f"--label-names must look like 2=benign,4=malignant, got {mapping!r}.")
    names = {old.strip(): new.strip() for old, _, new in pairs}
    unknown = sorted(set(names) - set(targets))
    if unknown:
        raise HelixError(
            f"--label-names renames {', '.join(unknown)}, which the targets do not hold; "
            f"they hold {', '.join(sorted(set(targets))[:10])}."
        )
    return [names.get(t, t) for t in targets]


_COMPARE = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
}


def parse_filter(text: str | None) -> Callable[[dict[str, str]], bool] | None:
    """``t0>100`` -> a row test (numbers compared as numbers, else as text)."""
    if not text:
        return None
    for symbol, compare in _COMPARE.items():
        column, sep, value = text.partition(symbol)
        if sep and column.strip() and value.strip():
            return _row_test(column.strip(), compare, value.strip())
    raise HelixError(f"--filter must look like COLUMN>VALUE (or >=, <, <=, ==, !=), got {text!r}.")


def _row_test(
    column: str, compare: Callable[[Any, Any], bool], value: str
) -> Callable[[dict[str, str]], bool]:
    try:
        number: float | None = float(value)
    except ValueError:
        number = None

    def test(fields: dict[str, str]) -> bool:
        lowered = {k.lower(): v for k, v in fields.items()}
        if column.lower() not in lowered:
            raise HelixError(f"--filter names column '{column}', which is not in the file.")
        cell = lowered[column.lower()].strip()
        if number is None:
            return compare(cell, value)
        try:
            return compare(float(cell), number)
        except ValueError:  # not a number (blank, NA): the row does not pass
            return False

    return test


def _features(options: TrainOptions) -> list[Feature]:
    """The tabular recipe's features: the columns named, or all but the target and id."""
    if options.target is None:
        raise HelixError("the tabular recipe needs --target COLUMN (the class column).")
    given = {
        "--filter": options.filter,
        "--labels": options.labels,
    }
    unsupported = [flag for flag, value in given.items() if value]
    if unsupported:
        raise HelixError(f"the tabular recipe does not take {', '.join(unsupported)} yet.")
    names = options.features or _columns(
        options, exclude={options.target, options.id_col, options.split_col}
    )
    low, high = _range(options.feature_range)
    if options.feature_type not in ("int", "float"):
        raise HelixError(f"--feature-type must be int or float, got {options.feature_type!r}.")
    return [
        Feature(name=n, type=options.feature_type, min=low, max=high)  # type: ignore[arg-type]
        for n in names
    ]


def _table(options: TrainOptions, recipe: TabularForest) -> Dataset:
    return load_table(
        options.data,
        recipe.input_schema(),
        target_col=options.target or "",  # _features refused a missing --target
        header=options.header,
        id_col=options.id_col,
        split_col=options.split_col,
    )


def _columns(options: TrainOptions, exclude: set[str | None]) -> list[str]:
    header = options.header
    if header is None:
        with opened(options.data) as stream:
            first = next((t for _, t in iter_lines(stream) if isinstance(t, str) and t.strip()), "")
        delimiter = "\t" if "\t" in first else ","
        header = next(csv.reader([first], delimiter=delimiter))
    lowered = {e.lower() for e in exclude if e}
    names = [h.strip() for h in header if h.strip() and h.strip().lower() not in lowered]
    if not names:
        raise HelixError(f"{options.data} has no feature columns besides the target and id.")
    return names


def _range(text: str | None) -> tuple[float | None, float | None]:
    if text is None:
        return None, None
    low, _, high = text.partition(":")
    try:
        return (float(low) if low else None), (float(high) if high else None)
    except ValueError:
        raise HelixError(f"--feature-range must look like 1:10, got {text!r}.") from None
