"""Tabular rows: a schema of named numeric features, per-field validation, streaming file reader.

Contract:
- :class:`TabularSchema` lists :class:`Feature` s (name, ``int`` or ``float``, optional inclusive
  ``min``/``max``, help text), the tokens that mean "missing" (``?``, empty, ``NA``, ``NaN`` by
  default) and whether a model accepts missing values (its pipeline imputes them) or not.
- :func:`validate_row` takes a mapping from a JSON object or a CSV row (values may be ``str``,
  ``int``, ``float`` or ``None``; ``None`` and float NaN count as missing) and returns the values
  in feature order as ``float`` (``None`` for a missing value the model accepts), or raises
  :class:`~helixserve.errors.InvalidRow` whose ``field_errors`` hold one message per bad field:
  missing, unknown (a likely typo), not a number, not a whole number, not finite, below ``min``
  or above ``max``. Booleans are not numbers. ``"5.0"`` is a whole number; ``"5.5"`` is not.
- :func:`rows_to_array` stacks validated rows into ``float32`` ``(N, n_features)``, NaN = missing.
- :func:`read_rows` streams a CSV/TSV file (path or binary stream, optionally gzip) of feature
  rows and yields :class:`FeatureRow` or located :class:`~helixserve.inputs.records.BadRecord`;
  columns that are not features are kept as ``fields`` (ids, labels) and never validated.
  ``max_decompressed`` caps what a gzip file may inflate to, as in
  :func:`~helixserve.inputs.readers.read_sequences`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

from helixserve.errors import InputError, InvalidFile, InvalidRow
from helixserve.inputs.parquet import is_parquet, parquet_table
from helixserve.inputs.records import BadRecord, bad_record
from helixserve.inputs.table import ID_COLUMNS, ColumnSpec, TableRow, read_table
from helixserve.inputs.textio import Source, check_head, iter_lines, opened, source_name

_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


class Feature(BaseModel):
    """One numeric input feature of a tabular model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    type: Literal["int", "float"] = "float"
    min: float | None = None
    max: float | None = None
    help: str = ""

    def rule(self) -> str:
        """The allowed values in words, e.g. ``a whole number from 1 to 10``."""
        noun = "a whole number" if self.type == "int" else "a number"
        low, high = _fmt(self.min), _fmt(self.max)
        if self.min is not None and self.max is not None:
            return f"{noun} from {low} to {high}"
        if self.min is not None:
            return f"{noun} of at least {low}"
        if self.max is not None:
            return f"{noun} of at most {high}"
        return noun


class TabularSchema(BaseModel):
    """The features a tabular model reads, in the order the model expects them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["tabular"] = "tabular"
    features: list[Feature] = Field(min_length=1)
    missing_tokens: tuple[str, ...] = ("?", "", "NA", "NaN", "nan")
    allow_missing: bool = False
    extra: Literal["forbid", "ignore"] = "forbid"

    @model_validator(mode="after")
    def _check_features(self) -> TabularSchema:
        names = [f.name for f in self.features]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"feature names must be unique; repeated: {', '.join(duplicated)}")
        for f in self.features:
            if f.min is not None and f.max is not None and f.min > f.max:
                raise ValueError(f"feature {f.name}: min {f.min} is larger than max {f.max}")
        return self

    def names(self) -> list[str]:
        return [f.name for f in self.features]


@dataclass(frozen=True, slots=True)
class FeatureRow:
    """A validated file row: feature values in schema order, plus its other columns."""

    index: int
    line: int
    id: str | None
    values: list[float | None]
    fields: dict[str, str] = field(default_factory=dict)


def _fmt(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else str(value)


def _show(value: object) -> str:
    if isinstance(value, str):
        return f"'{value[:40]}'" + ("..." if len(value) > 40 else "")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and value.bit_length() > 64:
        return f"an integer of {value.bit_length():,} bits"
    return repr(value)[:60]


def parse_value(raw: object, feature: Feature, schema: TabularSchema) -> float | None:
    """Parse one cell; raise :class:`InputError` (with ``field`` set) when it is not allowed."""
    name, rule = feature.name, feature.rule()
    if _is_missing(raw, schema):
        if schema.allow_missing:
            return None
        shown = f" ({_show(raw)})" if isinstance(raw, str) and raw.strip() else ""
        raise InputError(f"{name} is missing{shown}; this model needs {rule}.", field=name)
    value = _as_float(raw, name, rule)
    problem = None
    if not math.isfinite(value):
        problem = f"{name} must be a finite number, got {_show(raw)}."
    elif feature.type == "int" and not value.is_integer():
        problem = f"{name} must be {rule}, got {_show(raw)}, which is not whole."
    elif feature.min is not None and value < feature.min:
        problem = f"{name} is {_fmt(value)}, below the minimum {_fmt(feature.min)}; use {rule}."
    elif feature.max is not None and value > feature.max:
        problem = f"{name} is {_fmt(value)}, above the maximum {_fmt(feature.max)}; use {rule}."
    if problem is not None:
        raise InputError(problem, field=name)
    return value


def _is_missing(raw: object, schema: TabularSchema) -> bool:
    if raw is None:
        return True
    if isinstance(raw, float):
        return math.isnan(raw)
    return isinstance(raw, str) and raw.strip() in schema.missing_tokens


def _as_float(raw: object, name: str, rule: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise InputError(f"{name} must be {rule}, got {_show(raw)}.", field=name)
    if isinstance(raw, str) and not _NUMBER.fullmatch(raw.strip()):
        raise InputError(
            f"{name} must be {rule}, got {_show(raw)}, which is not a number.", field=name
        )
    try:
        return float(raw.strip()) if isinstance(raw, str) else float(raw)
    except OverflowError:
        raise InputError(f"{name} must be {rule}, got {_show(raw)}.", field=name) from None


def validate_row(row: object, schema: TabularSchema) -> list[float | None]:
    """Return the row's feature values in schema order, or raise :class:`InvalidRow`."""
    if not isinstance(row, Mapping):
        raise InvalidRow(
            f"a row must be an object of named fields ({', '.join(schema.names())}), "
            f"got {type(row).__name__}.",
            field_errors=[],
        )
    errors: list[InputError] = []
    values: list[float | None] = []
    for feature in schema.features:
        if feature.name not in row:
            errors.append(
                InputError(
                    f"{feature.name} is missing from the row; this model needs {feature.rule()}.",
                    field=feature.name,
                )
            )
            continue
        try:
            values.append(parse_value(row[feature.name], feature, schema))
        except InputError as err:
            errors.append(err)
    if schema.extra == "forbid":
        known = set(schema.names())
        for key in row:
            if key not in known:
                errors.append(
                    InputError(
                        f"unknown field '{key}'; this model's fields are: "
                        f"{', '.join(schema.names())}.",
                        field=key,
                    )
                )
    if errors:
        raise _row_error(errors)
    return values


def _row_error(errors: list[InputError]) -> InvalidRow:
    if len(errors) == 1:
        return InvalidRow(errors[0].problem, field_errors=errors)
    joined = " ".join(f"({i}) {e.problem}" for i, e in enumerate(errors, start=1))
    return InvalidRow(f"{len(errors)} fields are not valid: {joined}", field_errors=errors)


def rows_to_array(rows: Sequence[Sequence[float | None]]) -> npt.NDArray[np.float32]:
    """Stack validated rows into float32 ``(N, n_features)``; missing values become NaN."""
    if not rows:
        return np.empty((0, 0), dtype=np.float32)
    return np.array([[math.nan if v is None else v for v in row] for row in rows], dtype=np.float32)


def read_rows(
    source: Source,
    schema: TabularSchema,
    *,
    delimiter: str | None = None,
    header: list[str] | None = None,
    id_col: str | None = None,
    max_decompressed: int | None = None,
) -> Iterator[FeatureRow | BadRecord]:
    """Stream and validate feature rows from a CSV/TSV file; see the module contract."""
    with opened(source, max_decompressed) as stream:
        if is_parquet(stream):
            rows: Iterator[TableRow | BadRecord] = parquet_table(stream, _columns(schema, id_col))
        else:
            head = check_head(stream)
            sep = delimiter or _sniff_delimiter(source_name(source), head)
            rows = read_table(iter_lines(stream), sep, _columns(schema, id_col), header=header)
        count = 0
        for count, row in enumerate(rows, start=1):  # noqa: B007 - count is used below
            yield row if isinstance(row, BadRecord) else _validate_table_row(row, schema)
        if count == 0:
            raise InvalidFile("file has a header but no data rows; add at least one row.")


def _columns(schema: TabularSchema, id_col: str | None) -> Callable[[list[str]], ColumnSpec]:
    """Match the header to the schema's features and the id column, ignoring case."""

    def columns(names: list[str]) -> ColumnSpec:
        lowered = {n.strip().lower(): n for n in names}
        missing = [f for f in schema.names() if f.lower() not in lowered]
        if missing:
            raise InvalidFile(
                f"the file has no column {', '.join(repr(m) for m in missing)}; its header "
                f"has: {', '.join(names)[:300]}. This model needs: {', '.join(schema.names())}."
            )
        features = {f.lower() for f in schema.names()}
        ident = next((lowered[c] for c in ID_COLUMNS if c in lowered and c not in features), None)
        if id_col is not None:
            ident = lowered.get(id_col.strip().lower())
            if ident is None:
                raise InvalidFile(
                    f"id column '{id_col}' is not in the header ({', '.join(names)})."
                )
        rename = {lowered[f.lower()]: f for f in schema.names()}
        return ColumnSpec(id=ident, rename=rename)

    return columns


def _validate_table_row(row: TableRow, schema: TabularSchema) -> FeatureRow | BadRecord:
    ident = row.values.get(row.spec.id) if row.spec.id else None
    rename = row.spec.rename or {}
    features = {rename[k]: v for k, v in row.values.items() if k in rename}
    try:
        values = validate_row(features, schema)
    except InvalidRow as err:
        return bad_record(err, row.index, row.line, ident)
    others = {k: v for k, v in row.values.items() if k not in rename}
    return FeatureRow(row.index, row.line, ident, values, others)


def _sniff_delimiter(name: str, head: bytes) -> str:
    first = next((ln for ln in head.splitlines() if ln.strip()), b"")
    if name.lower().removesuffix(".gz").endswith((".tsv", ".tab")) or b"\t" in first:
        return "\t"
    return ","
