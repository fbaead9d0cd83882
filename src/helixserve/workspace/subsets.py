"""Dataset subsets: named selections of a dataset's good rows, and the split they make.

Contract:
- :data:`SubsetSpec` is one of (pydantic, discriminated by ``kind``, declared once here):
  ``{"kind": "all"}``; ``{"kind": "where", "column", "op", "value"}`` (``op`` one of ``==``,
  ``!=``, ``<``, ``<=``, ``>``, ``>=``, ``in``; ``value`` a text or a number, a non-empty list of
  them for ``in``, a number for the four comparisons); ``{"kind": "fraction", "of", "fraction",
  "seed", "group"}`` (``of``: a subset name, or null for the whole dataset; ``fraction`` strictly
  between 0 and 1; ``group``: a column whose groups stay together, or null); ``{"kind": "rest",
  "of", "minus"}`` (the rows of ``of`` (null: all) that are in none of the ``minus`` subsets).
  :func:`parse_subset` turns JSON into a spec, or raises :class:`~helixserve.errors.InvalidSubset`
  naming the subset, the field and what arrived.
- :class:`SubsetTable` holds the dataset's good rows (the rows its profile counts as good, in
  file order, numbered from 0) with the values of the columns subsets need;
  :func:`subset_table` builds it from the file, streaming, keeping only those columns.
- :func:`rows` gives a spec's rows as a sorted ``int64`` array of good-row numbers. Text values
  compare with the cell as written; numbers compare numerically (``1`` equals ``1.0``), and a
  missing cell matches no comparison but ``!=``. ``fraction`` is deterministic: the same seed and
  rows give the same selection (numpy's PCG64 permutation); it takes ``fraction * n`` rows rounded
  half up, or with ``group`` that share of the groups with all their rows. Errors
  (:class:`~helixserve.errors.InvalidSubset`): an unknown column (the columns are listed), an
  unknown subset name (the subsets are listed), subsets that refer to each other in a cycle, a
  comparison with a column that holds text; a selection with no row raises
  :class:`~helixserve.errors.EmptySubset` (``subset 'val' selects no row: ...``).
- :func:`split_labels` gives each good row ``'T'``, ``'V'``, ``'test'`` or ``''`` (the worker's
  ``__subset`` column); subsets that share rows raise :class:`~helixserve.errors.SplitOverlap`
  naming both. :func:`normalise_stats` gives each numeric column's mean and population standard
  deviation (1 for a constant column) over one subset's rows, ignoring missing values.
"""

from __future__ import annotations

import operator
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal, Self

import numpy as np
import numpy.typing as npt
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from helixserve.errors import EmptySubset, InputError, InvalidSubset, SplitOverlap
from helixserve.inputs.records import BadRecord
from helixserve.inputs.tabular import Feature, parse_value
from helixserve.workspace.rows import MISSING, ProfileLimits, Role, RowChecker, open_rows
from helixserve.workspace.tables import profile

Rows = npt.NDArray[np.int64]
Scalar = StrictStr | StrictInt | StrictFloat
COMPARISONS: dict[str, Callable[[npt.NDArray[np.float64], float], npt.NDArray[np.bool_]]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


class AllRows(BaseModel):
    """Every good row."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["all"] = "all"


class Where(BaseModel):
    """The rows whose ``column`` compares true with ``value``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["where"] = "where"
    column: str
    op: Literal["==", "!=", "<", "<=", ">", ">=", "in"]
    value: Scalar | list[Scalar]

    @model_validator(mode="after")
    def _value_fits_op(self) -> Self:
        if self.op == "in" and (not isinstance(self.value, list) or not self.value):
            raise ValueError(f"'in' takes a non-empty list of values, got {self.value!r}")
        if self.op != "in" and isinstance(self.value, list):
            raise ValueError(f"'{self.op}' takes one value, got a list; use 'in' for a list")
        if self.op in COMPARISONS and isinstance(self.value, str):
            raise ValueError(f"'{self.op}' compares numbers, got the text {self.value!r}")
        return self


class Fraction(BaseModel):
    """A random share of the rows of ``of`` (whole groups when ``group`` is set)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["fraction"] = "fraction"
    of: str | None = None
    fraction: StrictFloat | StrictInt
    seed: StrictInt = 0
    group: str | None = None

    @field_validator("fraction")
    @classmethod
    def _between_0_and_1(cls, value: float) -> float:
        if not 0 < value < 1:
            raise ValueError(
                f"fraction must lie strictly between 0 and 1 (0.8 is 80% of the rows), got {value}"
            )
        return value


class Rest(BaseModel):
    """The rows of ``of`` (null: all) that are in none of the ``minus`` subsets."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["rest"] = "rest"
    of: str | None = None
    minus: list[str] = Field(min_length=1)

    @field_validator("minus", mode="before")
    @classmethod
    def _one_name(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value


SubsetSpec = Annotated[AllRows | Where | Fraction | Rest, Field(discriminator="kind")]
_ADAPTER: TypeAdapter[AllRows | Where | Fraction | Rest] = TypeAdapter(SubsetSpec)


def parse_subset(data: object, name: str) -> AllRows | Where | Fraction | Rest:
    """A :data:`SubsetSpec` from JSON data, or :class:`InvalidSubset` saying what is wrong."""
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"][1:])
        message = str(first["msg"]).removeprefix("Value error, ")
        shown = where and first["type"] != "missing" and not str(first["msg"]).startswith("Value")
        got = f" (got {first.get('input')!r})" if shown else ""
        raise InvalidSubset(
            f"subset '{name}' is not valid: {where + ': ' if where else ''}{message}{got}.",
            field=where or None,
        ) from None


def columns_of(specs: Iterable[AllRows | Where | Fraction | Rest]) -> set[str]:
    """The columns some specs read (``where`` columns and ``group`` columns)."""
    found: set[str] = set()
    for spec in specs:
        if isinstance(spec, Where):
            found.add(spec.column)
        elif isinstance(spec, Fraction) and spec.group is not None:
            found.add(spec.group)
    return found


# --- the table -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnValues:
    """One column over the good rows: text codes, and numbers (NaN: missing or not a number)."""

    labels: tuple[str, ...]
    codes: npt.NDArray[np.int32]
    numbers: npt.NDArray[np.float64]
    text_example: str | None
    index: dict[str, int] = field(default_factory=dict, compare=False)

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> ColumnValues:
        """Build a column from its cells in row order."""
        builder = _Builder("value")
        for text in texts:
            builder.add(text)
        return builder.build()


class _Builder:
    """Accumulates one column while the file streams: each distinct text is parsed once."""

    def __init__(self, name: str) -> None:
        self.feature = Feature(name=name or "(unnamed)")
        self.index: dict[str, int] = {}
        self.codes = array("i")

    def add(self, text: str) -> None:
        code = self.index.get(text)
        if code is None:
            code = self.index[text] = len(self.index)
        self.codes.append(code)

    def build(self) -> ColumnValues:
        labels = tuple(self.index)
        numbers = np.array([self._number(t) for t in labels], dtype=np.float64)
        texts = [t for t, n in zip(labels, numbers, strict=True) if np.isnan(n) and not _missing(t)]
        codes = np.frombuffer(self.codes, dtype=np.int32).copy()
        return ColumnValues(
            labels=labels,
            codes=codes,
            numbers=numbers[codes],
            text_example=texts[0] if texts else None,
            index=dict(self.index),
        )

    def _number(self, text: str) -> float:
        try:
            value = parse_value(text, self.feature, MISSING)
        except InputError:
            return float("nan")
        return float("nan") if value is None else value


def _missing(text: str) -> bool:
    return text.strip() in MISSING.missing_tokens


@dataclass(frozen=True)
class SubsetTable:
    """The good rows of a dataset: their count, every column name, and some columns' values."""

    n_rows: int
    names: tuple[str, ...]
    columns: Mapping[str, ColumnValues]

    @classmethod
    def from_columns(cls, data: Mapping[str, Sequence[str]]) -> SubsetTable:
        """A table from columns of cells (tests, notebooks); every column as long as the first."""
        lengths = {len(cells) for cells in data.values()}
        if len(lengths) > 1:
            raise ValueError(f"columns differ in length: {sorted(lengths)}")
        columns = {name: ColumnValues.from_texts(cells) for name, cells in data.items()}
        return cls(lengths.pop() if lengths else 0, tuple(data), columns)

    def column(self, name: str, label: str = "the subset") -> ColumnValues:
        """A column's values; :class:`InvalidSubset` listing the columns if it is unknown."""
        if name in self.columns:
            return self.columns[name]
        if name in self.names:
            raise InvalidSubset(
                f"{label}: column '{name}' was not loaded; build the table with "
                "subset_table(..., columns=columns_of(specs))."
            )
        raise InvalidSubset(
            f"{label}: the dataset has no column '{name}'; its columns are: "
            f"{', '.join(repr(n) for n in self.names)}.",
            field="column",
        )

    def numbers(self, name: str) -> npt.NDArray[np.float64]:
        """A column as numbers per good row (NaN: missing or not a number)."""
        return self.column(name).numbers


def subset_table(
    path: Path,
    filename: str,
    columns: Iterable[str],
    *,
    roles: Mapping[str, Role] | None = None,
    limits: ProfileLimits | None = None,
) -> SubsetTable:
    """Stream a dataset file into a :class:`SubsetTable` of ``columns``; the good rows are the
    profile's (``roles``: the columns' chosen roles; ``None`` profiles the file first)."""
    limits = limits or ProfileLimits()
    if roles is None:
        roles = profile(path, filename, limits).roles()
    wanted = list(dict.fromkeys(columns))
    builders = {name: _Builder(name) for name in wanted}
    checker, count = RowChecker(roles, limits), 0
    with open_rows(path, filename, limits) as opened:
        for item in opened.items:
            if isinstance(item, BadRecord) or checker.problem(item.values) is not None:
                continue
            if count == 0:
                _known(wanted, list(item.values))
            count += 1
            for name, builder in builders.items():
                builder.add(item.values[name])
        names = tuple(opened.header)
    _known(wanted, list(names))
    return SubsetTable(count, names, {n: b.build() for n, b in builders.items()})


def _known(wanted: list[str], names: list[str]) -> None:
    unknown = [name for name in wanted if name not in names]
    if unknown:
        raise InvalidSubset(
            f"the dataset has no column {', '.join(repr(u) for u in unknown)}; its columns are: "
            f"{', '.join(repr(n) for n in names)}.",
            field="column",
        )


# --- selecting rows ------------------------------------------------------------------------------


def rows(
    spec: AllRows | Where | Fraction | Rest,
    table: SubsetTable,
    named: Mapping[str, AllRows | Where | Fraction | Rest] | None = None,
    *,
    name: str | None = None,
) -> Rows:
    """The good rows ``spec`` selects (sorted); see the module contract."""
    resolver = _Resolver(table, named or {})
    if name is not None:
        resolver.stack.append(name)
    return resolver.subset(spec, name)


class _Resolver:
    """Evaluates specs, resolving named subsets once each and refusing cycles."""

    def __init__(
        self, table: SubsetTable, named: Mapping[str, AllRows | Where | Fraction | Rest]
    ) -> None:
        self.table, self.named = table, named
        self.done: dict[str, Rows] = {}
        self.stack: list[str] = []

    def ref(self, ref: str | None, label: str) -> Rows:
        if ref is None:
            return np.arange(self.table.n_rows, dtype=np.int64)
        if ref in self.done:
            return self.done[ref]
        if ref in self.stack:
            cycle = " -> ".join([*self.stack[self.stack.index(ref) :], ref])
            raise InvalidSubset(
                f"subsets refer to each other in a cycle: {cycle}; make one of them select "
                "from the whole dataset (of: null) or from a subset outside the cycle."
            )
        if ref not in self.named:
            known = ", ".join(repr(n) for n in sorted(self.named)) or "(none)"
            raise InvalidSubset(
                f"{label} refers to subset '{ref}', which does not exist; the subsets are: {known}."
            )
        self.stack.append(ref)
        self.done[ref] = self.subset(self.named[ref], ref)
        self.stack.pop()
        return self.done[ref]

    def subset(self, spec: AllRows | Where | Fraction | Rest, name: str | None) -> Rows:
        label = f"subset '{name}'" if name else "the subset"
        if isinstance(spec, Where):
            picked = np.flatnonzero(_where(spec, self.table, label)).astype(np.int64)
        elif isinstance(spec, Fraction):
            picked = _fraction(spec, self.ref(spec.of, label), self.table, label)
        elif isinstance(spec, Rest):
            taken = [self.ref(other, label) for other in spec.minus]
            base = self.ref(spec.of, label)
            picked = np.setdiff1d(base, np.concatenate(taken)).astype(np.int64)
        else:
            picked = np.arange(self.table.n_rows, dtype=np.int64)
        if picked.size == 0:
            raise EmptySubset(
                f"{label} selects no row: {_why_empty(spec, self.table)}. Change its "
                "definition, or use another subset."
            )
        return picked


def _where(spec: Where, table: SubsetTable, label: str) -> npt.NDArray[np.bool_]:
    column = table.column(spec.column, label)
    if spec.op in COMPARISONS:
        if column.text_example is not None:
            raise InvalidSubset(
                f"{label}: column '{spec.column}' holds text (e.g. {column.text_example!r}), so "
                f"'{spec.op}' cannot compare it with {spec.value!r}; use == or in with a text "
                "value.",
                field="op",
            )
        limit = spec.value if isinstance(spec.value, int | float) else float("nan")
        with np.errstate(invalid="ignore"):
            return COMPARISONS[spec.op](column.numbers, float(limit))
    values = spec.value if isinstance(spec.value, list) else [spec.value]
    mask = np.zeros(column.codes.size, dtype=bool)
    for value in values:
        if isinstance(value, str):
            code = column.index.get(value)
            if code is not None:
                mask |= column.codes == code
        else:
            mask |= column.numbers == float(value)
    return ~mask if spec.op == "!=" else mask


def _fraction(spec: Fraction, base: Rows, table: SubsetTable, label: str) -> Rows:
    rng = np.random.default_rng(spec.seed)
    if spec.group is None:
        take = int(spec.fraction * base.size + 0.5)
        return np.sort(base[rng.permutation(base.size)[:take]])
    codes = table.column(spec.group, label).codes[base]
    groups = np.unique(codes)
    chosen = groups[rng.permutation(groups.size)[: int(spec.fraction * groups.size + 0.5)]]
    return base[np.isin(codes, chosen)]


def _why_empty(spec: AllRows | Where | Fraction | Rest, table: SubsetTable) -> str:
    if isinstance(spec, Where) and spec.op in COMPARISONS:
        numbers = table.columns[spec.column].numbers
        numbers = numbers[np.isfinite(numbers)]
        span = f"from {numbers.min():g} to {numbers.max():g}" if numbers.size else "(none)"
        return f"no row has {spec.column} {spec.op} {spec.value!r} (its numbers: {span})"
    if isinstance(spec, Where):
        column = table.columns[spec.column]
        shown = ", ".join(repr(v) for v in column.labels[:10])
        more = ", ..." if len(column.labels) > 10 else ""
        return f"no row has {spec.column} {spec.op} {spec.value!r} (its values: {shown}{more})"
    if isinstance(spec, Fraction):
        what = f"the groups of {spec.group}" if spec.group else "the rows"
        return f"{spec.fraction} of {what} of {spec.of or 'the dataset'} rounds to none"
    if isinstance(spec, Rest):
        return f"every row of {spec.of or 'the dataset'} is in {', '.join(spec.minus)}"
    return "the dataset has no good row"


# --- splits and normalisation ---------------------------------------------------------------------

NamedRows = tuple[str, Rows]


def split_labels(
    n_rows: int, train: NamedRows, val: NamedRows, test: NamedRows | None = None
) -> list[str]:
    """``'T'`` / ``'V'`` / ``'test'`` / ``''`` per good row; see the module contract."""
    parts = [(train, "T", "training"), (val, "V", "validation")]
    if test is not None:
        parts.append((test, "test", "test"))
    for i, ((a, rows_a), _, role_a) in enumerate(parts):
        for (b, rows_b), _, role_b in parts[i + 1 :]:
            shared = np.intersect1d(rows_a, rows_b)
            if shared.size:
                raise SplitOverlap(
                    f"the {role_a} subset '{a}' and the {role_b} subset '{b}' share "
                    f"{shared.size:,} rows (the first: good row {int(shared[0]) + 1:,}); a row "
                    f"can be in one of them only. Define '{b}' as the rest, e.g. "
                    f'{{"kind": "rest", "minus": ["{a}"]}}.'
                )
    labels = np.full(n_rows, "", dtype=object)
    for (name, picked), tag, _ in parts:
        if picked.size and (picked.min() < 0 or picked.max() >= n_rows):
            raise InvalidSubset(
                f"subset '{name}' selects row {int(picked.max()) + 1:,} of a dataset of "
                f"{n_rows:,} good rows; make the subsets again from this dataset version."
            )
        labels[picked] = tag
    return [str(label) for label in labels]


class Standardise(BaseModel):
    """Mean and standard deviation of one numeric column on one subset."""

    model_config = ConfigDict(frozen=True)
    mean: float
    std: float


def normalise_stats(
    values: Mapping[str, npt.ArrayLike], picked: Rows, *, subset: str | None = None
) -> dict[str, Standardise]:
    """Each column's mean and std over the rows ``picked``; see the module contract."""
    label = f"subset '{subset}'" if subset else "the subset"
    stats: dict[str, Standardise] = {}
    for name, column in values.items():
        chosen = np.asarray(column, dtype=np.float64)[picked]
        finite = chosen[np.isfinite(chosen)]
        if finite.size == 0:
            raise InvalidSubset(
                f"column '{name}' has no number in the {picked.size:,} rows of {label}; "
                "normalise on another subset, or leave the column out."
            )
        std = float(finite.std())
        stats[name] = Standardise(mean=float(finite.mean()), std=std if std > 0 else 1.0)
    return stats
