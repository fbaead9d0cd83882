"""Labelled training data: sequence files and tabular files, validated, then split.

Contract:
- :func:`load_sequences` reads a sequence file (FASTA / CSV / TSV / text, gzip or not) through
  :mod:`helixserve.inputs`, validates every sequence against the recipe's schema, and takes each
  record's target from a column (``target_col``) or from a labels file with one label per line
  (``labels_file``, the primer tutorial's layout). Several target columns (a list of two or
  more) make a multi-label target: each column one label, each value 0 or 1 (also
  ``true``/``false``, ``yes``/``no``); :attr:`Dataset.label_columns` names them and each
  target is the row's values joined by commas (``"0,1,1"``); a record with an empty or other
  value is refused, naming the column. Records that fail validation or have no
  usable target are *reported* (:attr:`Dataset.refused`, with their located messages) and left
  out; they never stop the others, and they are never dropped silently.
- :func:`load_table` does the same for tabular feature files with a
  :class:`~helixserve.inputs.tabular.TabularSchema` (and an optional split column).
- :func:`split` gives train / validation / test index arrays: from a split column (values
  ``train``/``T``, ``val``/``valid``/``V``, ``test``; with only T and V, V is the held-out test
  set and validation rows are drawn from T; ``external`` marks a second, out-of-distribution
  test set, e.g. an unseen experiment, that is never trained on and is scored on its own), or at
  random with a seed (stratified for binary and multi-class targets; multi-label ones are not
  stratified). Training sees only the train part; early stopping only the validation part.
  With groups (``group_col``: isolates, plates), no group is ever split across parts, also when
  validation rows are carved out of a split column's train rows.
- :class:`~helixserve.errors.HelixError` with a clear message for anything that makes training
  impossible: no usable record, a target column that is missing, too few examples of a class.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
from sklearn.model_selection import train_test_split

from helixserve.errors import HelixError, InputError, InvalidImage
from helixserve.inputs.images import ImageSchema, decode_image
from helixserve.inputs.readers import Format, read_sequences, validate_records
from helixserve.inputs.records import BadRecord, Record, bad_record
from helixserve.inputs.sequence import SequenceSchema
from helixserve.inputs.tabular import TabularSchema, read_rows
from helixserve.params.positive import binary_classes

Task = Literal["binary", "multiclass", "multilabel", "regression"]
LABEL_VALUES = {"1": "1", "0": "0", "1.0": "1", "0.0": "0", "true": "1", "false": "0"}
LABEL_VALUES |= {"yes": "1", "no": "0"}
SPLIT_NAMES = {
    "train": "train",
    "t": "train",
    "val": "val",
    "valid": "val",
    "v": "val",
    "validation": "val",
    "test": "test",
    "external": "external",
}


@dataclass
class Dataset:
    """Validated inputs with their targets, ids and optional split labels."""

    inputs: list[object]
    targets: list[str]
    ids: list[str]
    split_labels: list[str] | None = None
    refused: list[BadRecord] = field(default_factory=list)
    sha256: str = ""
    filtered_out: int = 0
    groups: list[str] | None = None
    positive: str | None = None  # of a binary target (None: by convention; params.positive)
    label_columns: list[str] | None = None  # multi-label: the target columns, in order

    def __len__(self) -> int:
        return len(self.inputs)


def subset(data: Dataset, index: npt.NDArray[np.intp]) -> Dataset:
    """The records at ``index`` (for cross-validation inside the non-test part)."""
    pick = index.tolist()
    return Dataset(
        [data.inputs[i] for i in pick],
        [data.targets[i] for i in pick],
        [data.ids[i] for i in pick],
        None,
        [],
        data.sha256,
        0,
        None if data.groups is None else [data.groups[i] for i in pick],
        positive=data.positive,
        label_columns=data.label_columns,
    )


def file_sha256(*paths: Path) -> str:
    """One sha256 over the bytes of every file given (the training-data fingerprint)."""
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def _labels_from_file(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_sequences(
    path: Path,
    schema: SequenceSchema,
    *,
    target_col: str | Sequence[str] | None = None,
    labels_file: Path | None = None,
    sequence_col: str | None = None,
    id_col: str | None = None,
    split_col: str | None = None,
    format: Format = "auto",
    where: Callable[[dict[str, str]], bool] | None = None,
    group_col: str | None = None,
) -> Dataset:
    """Read, validate and label a sequence file; see the module contract.

    ``where`` keeps only records whose other columns pass it (e.g. reliable rows, ``t0 > 100``);
    the others are counted in :attr:`Dataset.filtered_out`, not refused. ``group_col`` names
    each record's group (an isolate's bag of genes), kept in :attr:`Dataset.groups`.
    """
    if (target_col is None) == (labels_file is None):
        raise HelixError("give the targets either as a column (--target) or a file (--labels).")
    labels = _labels_from_file(labels_file) if labels_file else None
    items = validate_records(
        read_sequences(path, format=format, sequence_col=sequence_col, id_col=id_col), schema
    )
    data = Dataset([], [], [], [] if split_col else None, groups=[] if group_col else None)
    columns = None if isinstance(target_col, str) or target_col is None else list(target_col)
    if columns is not None:
        data.label_columns = _label_columns(columns)
    for item in items:
        if isinstance(item, BadRecord):
            data.refused.append(item)
            continue
        if where is not None and not where(item.fields):
            data.filtered_out += 1
            continue
        try:
            target = _target(item, target_col, labels, path)
        except InputError as err:
            data.refused.append(bad_record(err, item.index, item.line, item.id))
            continue
        if not target:
            data.refused.append(_no_target(item.index, item.line, item.id))
            continue
        data.inputs.append(item.sequence)
        data.targets.append(target)
        data.ids.append(item.id or str(item.index))
        if data.split_labels is not None and split_col is not None:
            data.split_labels.append(_field(item.fields, split_col, path))
        if data.groups is not None and group_col is not None:
            data.groups.append(_field(item.fields, group_col, path))
    if labels is not None and len(labels) != len(data) + len(data.refused) + data.filtered_out:
        raise HelixError(
            f"the labels file {labels_file} has {len(labels):,} labels but {path} has "
            f"{len(data) + len(data.refused):,} records; they must match line for line."
        )
    data.sha256 = file_sha256(*(p for p in (path, labels_file) if p is not None))
    return _non_empty(data, path)


def _field(fields: dict[str, str], column: str, path: Path) -> str:
    """A record's value in ``column`` (case-insensitive), or a clear error naming the columns."""
    lowered = {k.lower(): v for k, v in fields.items()}
    if column.lower() not in lowered:
        raise HelixError(
            f"column '{column}' is not in {path}; its other columns are: "
            f"{', '.join(k for k in fields if not k.startswith('__')) or '(none)'}."
        )
    return lowered[column.lower()].strip()


def _target(
    item: Record, column: str | Sequence[str] | None, labels: list[str] | None, path: Path
) -> str:
    if labels is not None:
        if item.index > len(labels):
            raise HelixError(f"the labels file has no label for record {item.index:,} of {path}.")
        return labels[item.index - 1]
    assert column is not None  # load_sequences checks that one of the two is given
    if isinstance(column, str):
        return _field(item.fields, column, path)
    return ",".join(_label_value(_field(item.fields, name, path), name) for name in column)


def _label_columns(columns: list[str]) -> list[str]:
    """Multi-label target columns: two or more, none named twice."""
    if len(columns) < 2 or any(not c.strip() for c in columns):
        raise HelixError(
            f"a multi-label target needs two or more column names, got {','.join(columns)!r}; "
            "give them comma-separated, e.g. --target enhancer,promoter,silencer."
        )
    twice = sorted({c for c in columns if columns.count(c) > 1})
    if twice:
        raise HelixError(f"target column {twice[0]!r} is named twice; name each label once.")
    return [c.strip() for c in columns]


def _label_value(value: str, column: str) -> str:
    """One cell of a label column as ``0`` or ``1``; anything else is the record's error."""
    if not value:
        raise InputError(
            f"label column '{column}' is empty; fill in 0 or 1, or remove the record.",
            field=column,
        )
    label = LABEL_VALUES.get(value.lower())
    if label is None:
        raise InputError(
            f"label column '{column}' holds {value[:40]!r}; a label column holds 0 or 1 (or "
            "true/false, yes/no).",
            field=column,
        )
    return label


def load_table(
    path: Path,
    schema: TabularSchema,
    *,
    target_col: str,
    header: list[str] | None = None,
    id_col: str | None = None,
    split_col: str | None = None,
) -> Dataset:
    """Read, validate and label a tabular file; see the module contract."""
    data = Dataset([], [], [], [] if split_col else None)
    for item in read_rows(path, schema, header=header, id_col=id_col):
        if isinstance(item, BadRecord):
            data.refused.append(item)
            continue
        target = _field(item.fields, target_col, path)
        if not target:
            data.refused.append(_no_target(item.index, item.line, item.id))
            continue
        data.inputs.append(dict(zip(schema.names(), item.values, strict=True)))
        data.targets.append(target)
        data.ids.append(item.id or str(item.index))
        if data.split_labels is not None and split_col is not None:
            data.split_labels.append(_field(item.fields, split_col, path))
    data.sha256 = file_sha256(path)
    return _non_empty(data, path)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")


def load_images(
    path: Path,
    schema: ImageSchema,
    *,
    target_col: str | None = None,
    path_col: str = "path",
    split_col: str | None = None,
    group_col: str | None = None,
    where: Callable[[dict[str, str]], bool] | None = None,
) -> Dataset:
    """Images from a folder of class sub-folders (``root/<label>/*.png``), or from a CSV with a
    path column (relative to the CSV's folder), a target column and optional split and group
    columns. Each image is decoded as serving will; one that fails is refused, not dropped."""
    rows = _image_rows(path, target_col, path_col)
    data = Dataset([], [], [], [] if split_col else None)
    data.groups = [] if group_col else None
    base = path if path.is_dir() else path.parent
    for number, row in enumerate(rows, start=1):
        if where is not None and not where(row):
            data.filtered_out += 1
            continue
        image = base / row[path_col]
        try:
            content = image.read_bytes()
            decode_image(content, schema)
        except (OSError, InputError) as err:
            problem = err if isinstance(err, InputError) else InvalidImage(f"cannot read {image}")
            data.refused.append(bad_record(problem, number, number + 1, row[path_col]))
            continue
        data.inputs.append(content)
        data.targets.append(row["__target__"])
        data.ids.append(row[path_col])
        if data.split_labels is not None and split_col:
            data.split_labels.append(_field(row, split_col, path))
        if data.groups is not None and group_col:
            data.groups.append(_field(row, group_col, path))
    data.sha256 = _images_sha256(path, data)
    return _non_empty(data, path)


def _image_rows(path: Path, target_col: str | None, path_col: str) -> list[dict[str, str]]:
    if path.is_dir():
        rows = []
        for folder in sorted(p for p in path.iterdir() if p.is_dir()):
            for file in sorted(folder.rglob("*")):
                if file.suffix.lower() in IMAGE_SUFFIXES:
                    rows.append({path_col: str(file.relative_to(path)), "__target__": folder.name})
        if not rows:
            raise HelixError(f"{path} has no class folders with images (root/<label>/*.png).")
        return rows
    if target_col is None:
        raise HelixError("an image CSV needs --target COLUMN naming the class column.")
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if rows and (path_col not in rows[0] or target_col not in rows[0]):
        raise HelixError(
            f"{path} needs columns '{path_col}' and '{target_col}'; it has {', '.join(rows[0])}."
        )
    return [{**row, "__target__": row[target_col]} for row in rows]


def _images_sha256(path: Path, data: Dataset) -> str:
    digest = hashlib.sha256()
    for image in data.inputs:
        digest.update(hashlib.sha256(image).digest())  # type: ignore[arg-type]
    return digest.hexdigest()


def _no_target(index: int, line: int, record_id: str | None) -> BadRecord:
    return bad_record(
        InputError("the target is empty; fill it in or remove the record."), index, line, record_id
    )


def _non_empty(data: Dataset, path: Path) -> Dataset:
    if not data.inputs:
        first = f" The first problem: {data.refused[0].error}" if data.refused else ""
        raise HelixError(f"{path} has no usable records for training.{first}")
    return data


def encode_targets(
    targets: Sequence[str],
    task: Task,
    positive: str | None = None,
    columns: Sequence[str] | None = None,
) -> tuple[npt.NDArray[np.float32] | npt.NDArray[np.int64], list[str] | None]:
    """Class indices and sorted labels (classification), float values (regression), or an
    ``(N, L)`` matrix of 0/1 and the label ``columns`` (multi-label); a binary target's labels
    are ``[negative, positive]`` (:func:`~helixserve.params.positive.binary_classes`:
    ``positive``, else a convention, else refused)."""
    if task == "multilabel":
        if columns is None:
            raise HelixError("a multi-label target needs its label columns.")
        matrix = np.array([[float(v) for v in t.split(",")] for t in targets], dtype=np.float32)
        return matrix.reshape(len(targets), len(columns)), list(columns)
    if task == "regression":
        try:
            values = np.array([float(t) for t in targets], dtype=np.float32)
        except ValueError as err:
            raise HelixError(f"a regression target is not a number: {err}.") from None
        if not np.isfinite(values).all():
            bad = targets[int(np.flatnonzero(~np.isfinite(values))[0])]
            raise HelixError(f"a regression target is not a finite number: {bad!r}.")
        return values, None
    labels = sorted(set(targets), key=_label_key)
    if len(labels) < 2:
        raise HelixError(f"classification needs at least 2 classes; the targets are {labels}.")
    if task == "binary" and len(labels) != 2:
        raise HelixError(f"a binary model needs exactly 2 classes; the targets hold {labels}.")
    if task == "binary":
        labels = binary_classes(labels, positive)
    index = {label: i for i, label in enumerate(labels)}
    return np.array([index[t] for t in targets], dtype=np.int64), labels


def _label_key(label: str) -> tuple[int, float | str, str]:
    """Numbers first, ascending, then text (the order of multiclass labels)."""
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, label, label)


@dataclass(frozen=True)
class Split:
    train: npt.NDArray[np.intp]
    val: npt.NDArray[np.intp]
    test: npt.NDArray[np.intp]
    external: npt.NDArray[np.intp] = field(default_factory=lambda: np.zeros(0, dtype=np.intp))


def split(
    data: Dataset,
    *,
    task: Task,
    seed: int,
    test_fraction: float = 0.2,
    val_fraction: float = 0.1,
) -> Split:
    """Train / validation / test indices; see the module contract."""
    if data.split_labels is not None:
        return _checked(
            _split_from_labels(
                data.split_labels,
                seed,
                val_fraction,
                data.groups,
                data.targets if task in ("binary", "multiclass") else None,
            )
        )
    if data.groups is not None:
        return _checked(_split_by_group(data.groups, seed, test_fraction, val_fraction))
    if not (0 < test_fraction < 1 and 0 < val_fraction < 1 - test_fraction):
        raise HelixError(
            f"test and validation fractions {test_fraction} and {val_fraction} do not fit: "
            "each must be above 0 and together below 1."
        )
    try:
        parts = _random_split(data, task, seed, test_fraction, val_fraction)
    except ValueError as err:  # e.g. a class too small to stratify
        raise HelixError(f"the data cannot be split for training: {err}.") from None
    return _checked(parts)


def _random_split(
    data: Dataset, task: Task, seed: int, test_fraction: float, val_fraction: float
) -> Split:
    indices = np.arange(len(data))
    stratify = data.targets if task in ("binary", "multiclass") else None
    rest, test = train_test_split(
        indices, test_size=test_fraction, random_state=seed, stratify=stratify
    )
    rest_targets = [data.targets[i] for i in rest] if stratify else None
    train, val = train_test_split(
        rest, test_size=val_fraction / (1 - test_fraction), random_state=seed, stratify=rest_targets
    )
    return Split(np.sort(train), np.sort(val), np.sort(test))


def _checked(parts: Split) -> Split:
    empty = [name for name in ("train", "val", "test") if not len(getattr(parts, name))]
    if empty:
        raise HelixError(
            f"the split leaves no rows for {', '.join(empty)}; give more rows, or change the "
            "split column or fractions."
        )
    return parts


def _split_by_group(
    groups: list[str], seed: int, test_fraction: float, val_fraction: float
) -> Split:
    """Whole groups (plates, sites, isolates) go to one part: no group is split across parts."""
    names = np.array(groups)
    unique = np.unique(names)
    if len(unique) < 3:
        raise HelixError(f"a group split needs at least 3 groups; found {len(unique)}.")
    order = np.random.default_rng(seed).permutation(unique)
    n_test = max(1, round(len(unique) * test_fraction))
    n_val = max(1, round(len(unique) * val_fraction))
    test, val = set(order[:n_test]), set(order[n_test : n_test + n_val])
    index = np.arange(len(names))
    in_test = np.isin(names, list(test))
    in_val = np.isin(names, list(val))
    return Split(index[~in_test & ~in_val], index[in_val], index[in_test])


def _split_from_labels(
    labels: list[str],
    seed: int,
    val_fraction: float,
    groups: list[str] | None = None,
    targets: list[str] | None = None,
) -> Split:
    names = [SPLIT_NAMES.get(label.lower()) for label in labels]
    unknown = sorted({labels[i] for i, n in enumerate(names) if n is None})
    if unknown:
        raise HelixError(
            "split column values must be train/T, val/V, test or external; found "
            f"{', '.join(unknown[:5])}."
        )
    by = {
        name: np.array([i for i, n in enumerate(names) if n == name], dtype=np.intp)
        for name in ("train", "val", "test", "external")
    }
    if not by["test"].size:  # a T/V column: V is the held-out set
        by["test"], by["val"] = by["val"], np.zeros(0, dtype=np.intp)
    if not by["test"].size:
        raise HelixError("the split column names no held-out rows; mark some 'test' (or 'V').")
    if not by["val"].size:  # carve early-stopping rows (or whole groups) out of train
        by["train"], by["val"] = _carve(by["train"], seed, val_fraction, groups, targets)
    return Split(by["train"], by["val"], by["test"], by["external"])


Rows = npt.NDArray[np.intp]


def _carve(
    train: Rows, seed: int, fraction: float, groups: list[str] | None, targets: list[str] | None
) -> tuple[Rows, Rows]:
    """(rest, validation) from the train rows: a random share of rows, or of whole groups
    (for classes: that share of each class's groups, so every class is validated on)."""
    rng = np.random.default_rng(seed)
    if groups is None:
        shuffled = rng.permutation(train)
        cut = max(1, int(len(shuffled) * fraction))
        return np.sort(shuffled[cut:]), np.sort(shuffled[:cut])
    names = np.array(groups)[train]
    first = {name: i for i, name in reversed(list(enumerate(names.tolist())))}
    label = {name: targets[train[i]] if targets else "" for name, i in first.items()}
    chosen_groups: list[str] = []
    for value in sorted(set(label.values())):
        members = rng.permutation(sorted(n for n in label if label[n] == value))
        chosen_groups += members[: max(1, int(len(members) * fraction))].tolist()
    chosen = np.isin(names, chosen_groups)
    return train[~chosen], train[chosen]
