"""Tabular feature schemas: per-field validation messages, arrays, and the streaming row reader."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from helixserve.errors import InputError, InvalidFile, InvalidRow
from helixserve.inputs.records import BadRecord
from helixserve.inputs.tabular import (
    Feature,
    FeatureRow,
    TabularSchema,
    read_rows,
    rows_to_array,
    validate_row,
)
from tests.conftest import write

NAMES = [
    "clump_thickness",
    "uniformity_cell_size",
    "uniformity_cell_shape",
    "marginal_adhesion",
    "single_epithelial_cell_size",
    "bare_nuclei",
    "bland_chromatin",
    "normal_nucleoli",
    "mitoses",
]
TUMOUR = TabularSchema(features=[Feature(name=n, type="int", min=1, max=10) for n in NAMES])
GOOD = dict.fromkeys(NAMES, 5)


def row_error(row: Mapping[str, object], schema: TabularSchema = TUMOUR) -> InvalidRow:
    with pytest.raises(InvalidRow) as info:
        validate_row(row, schema)
    return info.value


def test_valid_row_in_schema_order() -> None:
    row = {**GOOD, "clump_thickness": "3", "mitoses": 1.0}
    assert validate_row(row, TUMOUR) == [3.0] + [5.0] * 7 + [1.0]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (11, "bare_nuclei is 11, above the maximum 10; use a whole number from 1 to 10."),
        ("0", "bare_nuclei is 0, below the minimum 1; use a whole number from 1 to 10."),
        ("5.5", "bare_nuclei must be a whole number from 1 to 10, got '5.5', which is not whole."),
        (
            "abc",
            "bare_nuclei must be a whole number from 1 to 10, got 'abc', which is not a number.",
        ),
        (True, "bare_nuclei must be a whole number from 1 to 10, got true."),
        ([1], "bare_nuclei must be a whole number from 1 to 10, got [1]."),
        ("?", "bare_nuclei is missing ('?'); this model needs a whole number from 1 to 10."),
        (None, "bare_nuclei is missing; this model needs a whole number from 1 to 10."),
        ("", "bare_nuclei is missing; this model needs a whole number from 1 to 10."),
        (
            "inf",
            "bare_nuclei must be a whole number from 1 to 10, got 'inf', which is not a number.",
        ),
        (float("inf"), "bare_nuclei must be a finite number, got inf."),
        (
            "1_0",
            "bare_nuclei must be a whole number from 1 to 10, got '1_0', which is not a number.",
        ),
        ("５", "bare_nuclei must be a whole number from 1 to 10, got '５', which is not a number."),
        (10**400, "bare_nuclei must be a whole number from 1 to 10, got an integer of 1,329 bits."),
        (" 7 ", None),
        (float("nan"), "bare_nuclei is missing; this model needs a whole number from 1 to 10."),
    ],
)
def test_bad_field_messages(value: object, message: str | None) -> None:
    if message is None:  # accepted
        assert validate_row({**GOOD, "bare_nuclei": value}, TUMOUR)[5] == 7.0
        return
    err = row_error({**GOOD, "bare_nuclei": value})
    assert str(err) == message
    assert [(e.field, e.problem) for e in err.field_errors] == [("bare_nuclei", message)]


def test_whole_number_written_as_float_is_accepted() -> None:
    assert validate_row({**GOOD, "mitoses": "7.0"}, TUMOUR)[-1] == 7.0


def test_several_bad_fields_missing_and_unknown() -> None:
    row = {**GOOD, "mitoses": 0, "clump": 3}
    del row["bare_nuclei"]
    err = row_error(row)
    assert str(err) == (
        "3 fields are not valid: (1) bare_nuclei is missing from the row; this model needs a "
        "whole number from 1 to 10. (2) mitoses is 0, below the minimum 1; use a whole number "
        "from 1 to 10. (3) unknown field 'clump'; this model's fields are: "
        + ", ".join(NAMES)
        + "."
    )
    assert [e.field for e in err.field_errors] == ["bare_nuclei", "mitoses", "clump"]


def test_missing_values_allowed_when_the_model_imputes() -> None:
    schema = TUMOUR.model_copy(update={"allow_missing": True})
    values = validate_row({**GOOD, "bare_nuclei": "?"}, schema)
    assert values[5] is None
    array = rows_to_array([values, validate_row(GOOD, schema)])
    assert array.shape == (2, 9)
    assert array.dtype == np.float32
    assert math.isnan(array[0, 5])
    assert array[1, 5] == 5.0


def test_extra_fields_ignored_on_request() -> None:
    schema = TUMOUR.model_copy(update={"extra": "ignore"})
    assert len(validate_row({**GOOD, "id": "x"}, schema)) == 9


def test_float_feature_rules() -> None:
    schema = TabularSchema(features=[Feature(name="dose", min=0), Feature(name="t", max=1.5)])
    assert validate_row({"dose": "0.25", "t": -3}, schema) == [0.25, -3.0]
    assert str(row_error({"dose": -1, "t": 0}, schema)) == (
        "dose is -1, below the minimum 0; use a number of at least 0."
    )
    assert str(row_error({"dose": 1, "t": 2}, schema)) == (
        "t is 2, above the maximum 1.5; use a number of at most 1.5."
    )


def test_empty_batch_array() -> None:
    assert rows_to_array([]).shape == (0, 0)


@given(st.lists(st.integers(min_value=1, max_value=10), min_size=9, max_size=9))
def test_in_range_rows_always_validate(values: list[int]) -> None:
    row = dict(zip(NAMES, [str(v) for v in values], strict=True))
    assert validate_row(row, TUMOUR) == [float(v) for v in values]


@given(
    st.dictionaries(
        st.text(max_size=5),
        st.one_of(st.none(), st.text(), st.floats(), st.integers(), st.booleans()),
    )
)
def test_any_mapping_gives_values_or_invalid_row(row: dict[str, object]) -> None:
    try:
        validate_row(row, TUMOUR)
    except InvalidRow as err:
        assert err.field_errors
        assert all(isinstance(e, InputError) and e.field is not None for e in err.field_errors)


# --- files ----------------------------------------------------------------------------------------


def test_read_rows_reports_bad_rows_and_keeps_good_ones(tmp_path: Path) -> None:
    header = "id," + ",".join(NAMES) + ",class\n"
    body = "a,5,1,1,1,2,1,3,1,1,2\nb,5,1,1,1,2,?,3,1,1,2\nc,5,1,1,1,2,12,3,1,1,4\n"
    items = list(read_rows(write(tmp_path / "t.csv", header + body), TUMOUR, id_col="id"))
    assert isinstance(items[0], FeatureRow)
    assert (items[0].index, items[0].line, items[0].id) == (1, 2, "a")
    assert items[0].fields == {"id": "a", "class": "2"}
    assert [str(i.error) for i in items if isinstance(i, BadRecord)] == [
        "record 2 (id b), line 3: bare_nuclei is missing ('?'); this model needs a whole number "
        "from 1 to 10.",
        "record 3 (id c), line 4: bare_nuclei is 12, above the maximum 10; use a whole number "
        "from 1 to 10.",
    ]


def test_read_rows_missing_feature_column(tmp_path: Path) -> None:
    path = write(tmp_path / "t.tsv", "clump_thickness\tmitoses\n1\t1\n")
    with pytest.raises(InvalidFile) as info:
        list(read_rows(path, TUMOUR))
    assert str(info.value).startswith(
        "the file has no column 'uniformity_cell_size', 'uniformity_cell_shape'"
    )
    assert str(info.value).endswith("This model needs: " + ", ".join(NAMES) + ".")


def test_non_mapping_rows() -> None:
    for row in (["a"], None, "5,5,5"):
        with pytest.raises(InvalidRow) as info:
            validate_row(row, TUMOUR)
        assert str(info.value).startswith(
            "a row must be an object of named fields (clump_thickness,"
        )


def test_header_case_and_blank_first_line(tmp_path: Path) -> None:
    header = "ID\t" + "\t".join(n.upper() for n in NAMES) + "\n"
    path = write(tmp_path / "t.txt", "\n" + header + "a\t" + "\t".join(["3"] * 9) + "\n")
    items = list(read_rows(path, TUMOUR, id_col="id"))
    assert len(items) == 1
    row = items[0]
    assert isinstance(row, FeatureRow)
    assert (row.id, row.line, row.values) == ("a", 3, [3.0] * 9)


def test_header_only_table(tmp_path: Path) -> None:
    with pytest.raises(InvalidFile, match=r"^file has a header but no data rows"):
        list(read_rows(write(tmp_path / "t.csv", ",".join(NAMES) + "\n"), TUMOUR))
