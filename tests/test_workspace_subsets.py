"""Dataset subsets: specs, selections, splits and normalisation (docs/design/workspace.md).

Exact error text for every refusal, hypothesis properties (``where`` against a plain Python
filter on random tables; fractions deterministic, complementary with ``rest``, groups kept
whole), and the subset table's rows checked against the profile's good rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helixserve.errors import EmptySubset, InvalidSubset, SplitOverlap
from helixserve.workspace.subsets import (
    SubsetTable,
    normalise_stats,
    parse_subset,
    rows,
    split_labels,
    subset_table,
)
from helixserve.workspace.tables import profile
from tests.conftest import write

SEQ = "ACGTACGTAC"

TABLE = SubsetTable.from_columns(
    {
        "split": ["T", "T", "V", "test", "T", ""],
        "score": ["1", "2.5", "NA", "4", "-1", "3"],
        "plate": ["p1", "p1", "p2", "p2", "p3", "p3"],
    }
)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"kind": "all"}, [0, 1, 2, 3, 4, 5]),
        ({"kind": "where", "column": "split", "op": "==", "value": "T"}, [0, 1, 4]),
        ({"kind": "where", "column": "split", "op": "!=", "value": "T"}, [2, 3, 5]),
        ({"kind": "where", "column": "split", "op": "in", "value": ["V", "test"]}, [2, 3]),
        ({"kind": "where", "column": "score", "op": ">=", "value": 2.5}, [1, 3, 5]),
        ({"kind": "where", "column": "score", "op": "<", "value": 1}, [4]),
        ({"kind": "where", "column": "score", "op": "==", "value": 4}, [3]),
        ({"kind": "where", "column": "score", "op": "in", "value": [1, "NA"]}, [0, 2]),
        ({"kind": "rest", "minus": "t"}, [2, 3, 5]),
    ],
)
def test_where_and_rest_select_rows(spec: dict[str, object], expected: list[int]) -> None:
    named = {"t": parse_subset({"kind": "where", "column": "split", "op": "==", "value": "T"}, "t")}
    assert rows(parse_subset(spec, "s"), TABLE, named).tolist() == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"kind": "where", "column": "x", "op": "~", "value": 1},
            "subset 's' is not valid: op: Input should be '==', '!=', '<', '<=', '>', '>=' or 'in' "
            "(got '~').",
        ),
        (
            {"kind": "where", "column": "x", "op": "<", "value": "a"},
            "subset 's' is not valid: '<' compares numbers, got the text 'a'.",
        ),
        (
            {"kind": "where", "column": "x", "op": "in", "value": 3},
            "subset 's' is not valid: 'in' takes a non-empty list of values, got 3.",
        ),
        (
            {"kind": "where", "column": "x", "op": "==", "value": [1]},
            "subset 's' is not valid: '==' takes one value, got a list; use 'in' for a list.",
        ),
        (
            {"kind": "where", "column": "x", "op": "==", "value": True},
            "subset 's' is not valid: value.str: Input should be a valid string (got True).",
        ),
        (
            {"kind": "fraction", "fraction": 1},
            "subset 's' is not valid: fraction: fraction must lie strictly between 0 and 1 (0.8 is "
            "80% of the rows), got 1.",
        ),
        (
            {"kind": "where", "column": "x", "op": "=="},
            "subset 's' is not valid: value: Field required.",
        ),
        (
            {"kind": "sample"},
            "subset 's' is not valid: Input tag 'sample' found using 'kind' does not match any of "
            "the expected tags: 'all', 'where', 'fraction', 'rest'.",
        ),
    ],
)
def test_bad_specs_are_refused_clearly(spec: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidSubset) as info:
        parse_subset(spec, "s")
    assert str(info.value) == message


def test_subset_errors_name_the_subset() -> None:
    where = parse_subset({"kind": "where", "column": "size", "op": "==", "value": 1}, "w")
    with pytest.raises(InvalidSubset) as info:
        rows(where, TABLE, name="val")
    assert str(info.value) == (
        "subset 'val': the dataset has no column 'size'; its columns are: 'split', 'score', "
        "'plate'."
    )
    text = parse_subset({"kind": "where", "column": "plate", "op": ">", "value": 1}, "w")
    with pytest.raises(InvalidSubset, match=r"^subset 'x': column 'plate' holds text \(e\.g\. "):
        rows(text, TABLE, name="x")
    empty = parse_subset({"kind": "where", "column": "split", "op": "==", "value": "v"}, "w")
    with pytest.raises(EmptySubset) as gone:
        rows(empty, TABLE, name="val")
    assert str(gone.value) == (
        "subset 'val' selects no row: no row has split == 'v' (its values: 'T', 'V', 'test', ''). "
        "Change its definition, or use another subset."
    )
    cycle = {
        "a": parse_subset({"kind": "fraction", "of": "b", "fraction": 0.5}, "a"),
        "b": parse_subset({"kind": "fraction", "of": "c", "fraction": 0.5}, "b"),
        "c": parse_subset({"kind": "rest", "minus": ["a"]}, "c"),
    }
    with pytest.raises(InvalidSubset) as loop:
        rows(cycle["a"], TABLE, cycle, name="a")
    assert str(loop.value).startswith("subsets refer to each other in a cycle: a -> b -> c -> a;")
    with pytest.raises(InvalidSubset, match=r"refers to subset 'nope', which does not exist; "):
        rows(parse_subset({"kind": "rest", "minus": ["nope"]}, "r"), TABLE, cycle, name="r")


def random_table(draw: st.DrawFn) -> SubsetTable:
    size = draw(st.integers(min_value=1, max_value=40))
    cells = st.sampled_from(["a", "b", "c", "", "1", "2.5", "-3", "NA"])
    return SubsetTable.from_columns({"c": draw(st.lists(cells, min_size=size, max_size=size))})


@settings(max_examples=80)
@given(
    data=st.data(),
    op=st.sampled_from(["==", "!=", "in"]),
    value=st.sampled_from(["a", "1", 1.0, 2.5]),
)
def test_where_matches_a_plain_python_filter(data: st.DataObject, op: str, value: object) -> None:
    table = data.draw(st.composite(random_table)())
    cells = list(table.columns["c"].labels[i] for i in table.columns["c"].codes)

    def equal(cell: str) -> bool:
        if isinstance(value, str):
            return cell == value
        try:
            return float(cell) == value
        except ValueError:
            return False

    expected = [i for i, cell in enumerate(cells) if equal(cell) != (op == "!=")]
    spec = parse_subset(
        {"kind": "where", "column": "c", "op": op, "value": [value] if op == "in" else value}, "s"
    )
    if expected:
        assert rows(spec, table).tolist() == expected
    else:
        with pytest.raises(EmptySubset):
            rows(spec, table)


@settings(max_examples=60)
@given(
    size=st.integers(min_value=2, max_value=300),
    fraction=st.floats(min_value=0.05, max_value=0.95),
    seed=st.integers(min_value=0, max_value=2**32),
    groups=st.integers(min_value=2, max_value=12),
)
def test_fractions_are_deterministic_and_keep_groups(
    size: int, fraction: float, seed: int, groups: int
) -> None:
    table = SubsetTable.from_columns({"g": [f"g{i % groups}" for i in range(size)]})
    spec = {"kind": "fraction", "fraction": fraction, "seed": seed}
    named = {"a": parse_subset(spec, "a"), "b": parse_subset({**spec, "group": "g"}, "b")}
    try:
        first = rows(named["a"], table, named)
    except EmptySubset:
        assert round(fraction * size) == 0
        return
    assert first.tolist() == rows(named["a"], table, named).tolist()
    assert first.size == int(fraction * size + 0.5)
    rest = (
        rows(parse_subset({"kind": "rest", "minus": ["a"]}, "r"), table, named)
        if first.size < size
        else first[:0]
    )
    assert sorted([*first.tolist(), *rest.tolist()]) == list(range(size))
    try:
        grouped = rows(named["b"], table, named)
    except EmptySubset:
        return
    chosen = {i % groups for i in grouped.tolist()}
    assert grouped.tolist() == [i for i in range(size) if i % groups in chosen]


def test_split_labels_and_overlaps() -> None:
    train, val, test = np.array([0, 1, 4]), np.array([2]), np.array([3])
    assert split_labels(6, ("train", train), ("val", val), ("test", test)) == [
        "T",
        "T",
        "V",
        "test",
        "T",
        "",
    ]
    with pytest.raises(SplitOverlap) as info:
        split_labels(6, ("train", train), ("val", val), ("holdout", np.array([3, 4])))
    assert str(info.value) == (
        "the training subset 'train' and the test subset 'holdout' share 1 rows (the first: good "
        "row 5); a row can be in one of them only. Define 'holdout' as the rest, e.g. "
        '{"kind": "rest", "minus": ["train"]}.'
    )


def test_normalise_stats_on_one_subset() -> None:
    picked = np.array([0, 1, 3])
    stats = normalise_stats({"score": TABLE.numbers("score")}, picked, subset="train")
    assert stats["score"].mean == pytest.approx(7.5 / 3)
    assert stats["score"].std == pytest.approx(np.std([1, 2.5, 4]))
    assert normalise_stats({"k": [5.0, 5.0]}, np.array([0, 1]))["k"].std == 1.0
    with pytest.raises(InvalidSubset) as info:
        normalise_stats({"score": TABLE.numbers("score")}, np.array([2]), subset="val")
    assert str(info.value) == (
        "column 'score' has no number in the 1 rows of subset 'val'; normalise on another "
        "subset, or leave the column out."
    )


def test_subset_table_rows_are_the_profiles_good_rows(tmp_path: Path) -> None:
    text = "sequence,y,grp\n" + "".join(
        f"{'ACGTQ' if i % 4 == 0 else SEQ},{i},{'g' + str(i % 3)}\n" for i in range(40)
    )
    path = write(tmp_path / "d.csv", text)
    result = profile(path, "d.csv")
    table = subset_table(path, "d.csv", ["y"])
    assert table.n_rows == result.good_rows == 30
    assert set(table.columns) == {"y"} and table.names == ("sequence", "y", "grp")
    assert table.numbers("y")[:4].tolist() == [1.0, 2.0, 3.0, 5.0]
    with pytest.raises(InvalidSubset, match=r"^the dataset has no column 'z'; its columns are: "):
        subset_table(path, "d.csv", ["z"], roles=result.roles())
