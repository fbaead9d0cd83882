"""Batch outputs give labels and ids back exactly (CSV, TSV, JSON Lines, Parquet, gzip or not);
the spreadsheet guard (``--spreadsheet-safe``) only when asked for, and only in CSV/TSV."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helixserve.batch.predict import BatchError, score
from helixserve.inputs.sequence import SequenceSchema
from helixserve.runtime.predictor import Predictor
from helixserve.store import ModelStore, OutputSchema, make_manifest
from tests.support.onnx_models import gc_binary_model
from tests.support.server import running

GC, AT = "GC" * 25, "AT" * 25
IDS = ["=cmd", "+1", "=BAD()", '"q",x', "-2+3"]
FORMATS = ["csv", "tsv", "csv.gz", "jsonl", "jsonl.gz", "parquet"]


def _publish(store: ModelStore, labels: list[str], name: str = "gc") -> None:
    files = {"model.onnx": gc_binary_model(50, bias=12.5), "card.md": b"# gc\n"}
    manifest = make_manifest(
        files,
        name=name,
        task="binary",
        input=SequenceSchema(length=50),
        output=OutputSchema(labels=labels),
    )
    store.publish(manifest, files)


def _input(folder: Path) -> Path:
    """Five records with formula-like ids: GC-rich ones score the second label, AT-rich the
    first; record 3 is refused (so the errors file holds a formula-like id too)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "sequence"])
    for record_id, sequence in zip(IDS, [GC, AT, "ACGX", AT, GC], strict=True):
        writer.writerow([record_id, sequence])
    path = folder / "in.csv"
    path.write_text(out.getvalue(), encoding="utf-8")
    return path


def _read(path: Path) -> tuple[list[str], list[list[object]]]:
    """Header and rows of a batch output, whatever its format, as the file holds them."""
    if path.name.endswith(".parquet"):
        import pyarrow.parquet as pq

        table = pq.read_table(str(path))
        return table.column_names, [list(row.values()) for row in table.to_pylist()]
    raw = path.read_bytes()
    text = (gzip.decompress(raw) if path.name.endswith(".gz") else raw).decode("utf-8")
    if ".jsonl" in path.name:
        objects = [json.loads(line) for line in text.split("\n") if line]
        return list(objects[0]), [list(o.values()) for o in objects]
    delimiter = "\t" if ".tsv" in path.name else ","
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    return rows[0], [list(r) for r in rows[1:]]


def _errors_path(output: Path) -> Path:
    name = output.name.replace("out.", "out.errors.", 1)
    return output.with_name(name.replace(".parquet", ".csv"))


def _score(folder: Path, labels: list[str], fmt: str, safe: bool = False) -> Path:
    store = ModelStore.open(str(folder / "store"), cache_dir=folder / "cache")
    _publish(store, labels)
    output = folder / f"out.{fmt}"
    summary = score(
        Predictor.from_store(store, "gc"),
        str(_input(folder)),
        str(output),
        spreadsheet_safe=safe,
    )
    assert (summary.scored, summary.refused, summary.errors) == (4, 1, str(_errors_path(output)))
    return output


label_text = st.text(min_size=1, max_size=12).filter(lambda t: "\x00" not in t)
tricky = st.sampled_from(["+", "-", "=", "@", "'", '"', ",", "\n", "\r", "\t", "+1", "-x"])
labels = st.lists(st.one_of(label_text, tricky), min_size=2, max_size=2, unique=True)


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pair=labels)
def test_labels_and_ids_round_trip_exactly(fmt: str, pair: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        output = _score(Path(tmp), pair, fmt)
        header, rows = _read(output)
        errors_header, errors = _read(_errors_path(output))
    assert header == ["index", "id", "label", "probability", *[f"p_{x}" for x in pair]]
    assert [row[:3] for row in rows] == [
        [_typed(1, fmt), "=cmd", pair[1]],
        [_typed(2, fmt), "+1", pair[0]],
        [_typed(4, fmt), '"q",x', pair[0]],
        [_typed(5, fmt), "-2+3", pair[1]],
    ]
    assert errors_header[:2] == ["index", "id"]
    assert [row[:2] for row in errors] == [[_typed(3, fmt, errors=True), "=BAD()"]]


def _typed(index: int, fmt: str, errors: bool = False) -> object:
    """An ``index`` cell as the format holds it: text in CSV/TSV, a number in Parquet/JSON."""
    typed = "jsonl" in fmt or (fmt == "parquet" and not errors)
    return index if typed else str(index)


@pytest.mark.parametrize("fmt", ["csv", "tsv", "csv.gz"])
def test_spreadsheet_safe_quotes_formula_cells_in_csv(tmp_path: Path, fmt: str) -> None:
    output = _score(tmp_path, ["-", "+"], fmt, safe=True)
    header, rows = _read(output)
    assert header == ["index", "id", "label", "probability", "p_-", "p_+"]
    assert [row[:3] for row in rows] == [
        ["1", "'=cmd", "'+"],
        ["2", "+1", "'-"],  # a plain number stays a number
        ["4", '"q",x', "'-"],
        ["5", "'-2+3", "'+"],
    ]
    assert all(not str(cell).startswith("'") for row in rows for cell in row[3:])  # numbers
    _, errors = _read(_errors_path(output))
    assert [row[:2] for row in errors] == [["3", "'=BAD()"]]


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_spreadsheet_safe_leaves_typed_formats_exact(tmp_path: Path, fmt: str) -> None:
    _, rows = _read(_score(tmp_path, ["-", "+"], fmt, safe=True))
    expected = [["=cmd", "+"], ["+1", "-"], ['"q",x', "-"], ["-2+3", "+"]]
    assert [row[1:3] for row in rows] == expected


def test_jsonl_rows_are_typed_objects(tmp_path: Path) -> None:
    output = _score(tmp_path, ["no", "yes"], "jsonl")
    first = json.loads(output.read_text(encoding="utf-8").splitlines()[0])
    assert first == {
        "index": 1,
        "id": "=cmd",
        "label": "yes",
        "probability": 0.999996,
        "p_no": 0.000004,
        "p_yes": 0.999996,
    }
    error = json.loads((tmp_path / "out.errors.jsonl").read_text(encoding="utf-8"))
    assert error == {
        "index": 3,
        "id": "=BAD()",
        "line": 4,
        "field": "sequence",
        "position": 4,
        "message": "record 3 (id =BAD()), line 4: DNA sequence is not valid DNA: position 4 "
        "is 'X'. Only the letters A, C, G, T are allowed; remove it or correct the typo.",
    }


def test_a_journal_of_another_version_is_not_resumed(tmp_path: Path) -> None:
    store = ModelStore.open(str(tmp_path / "store"), cache_dir=tmp_path / "cache")
    _publish(store, ["0", "1"])
    parts = tmp_path / "out.csv.parts"
    parts.mkdir()
    (parts / "journal.json").write_text(json.dumps({"version": 1, "chunks": 1}))
    with pytest.raises(BatchError) as caught:
        score(
            Predictor.from_store(store, "gc"),
            str(_input(tmp_path)),
            str(tmp_path / "out.csv"),
            resume=True,
        )
    assert str(caught.value) == (
        f"cannot resume: the journal {parts / 'journal.json'} was written by another helixserve "
        f"version (journal format 1, this one writes 2). Delete {parts} to start again."
    )


def _cli(store: ModelStore, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HELIXSERVE_CACHE_DIR": str(store.cache_dir), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "helixserve", "predict", "gc", *args, "--store", store.uri],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_cli_writes_plus_and_minus_plainly_unless_spreadsheet_safe(tmp_path: Path) -> None:
    store = ModelStore.open(str(tmp_path / "store"), cache_dir=tmp_path / "cache")
    _publish(store, ["-", "+"])
    data = _input(tmp_path)
    plain = _cli(store, str(data), "-o", str(tmp_path / "plain.csv"))
    assert plain.returncode == 0, plain.stderr
    safe = _cli(store, str(data), "-o", str(tmp_path / "safe.csv"), "--spreadsheet-safe")
    assert safe.returncode == 0, safe.stderr
    assert (tmp_path / "plain.csv").read_text().splitlines()[:3] == [
        "index,id,label,probability,p_-,p_+",
        "1,=cmd,+,0.999996,0.000004,0.999996",
        "2,+1,-,0.999996,0.999996,0.000004",
    ]
    assert (tmp_path / "safe.csv").read_text().splitlines()[:3] == [
        "index,id,label,probability,p_-,p_+",
        "1,'=cmd,'+,0.999996,0.000004,0.999996",
        "2,+1,'-,0.999996,0.999996,0.000004",
    ]


API_LABELS = {"signs": ["-", "+"], "quoted": ['a "b",\nc', "=1+1\r"]}


def test_api_and_batch_give_the_same_labels(tmp_path: Path) -> None:
    store = ModelStore.open(str(tmp_path / "store"), cache_dir=tmp_path / "cache")
    for name, pair in API_LABELS.items():
        _publish(store, pair, name)
    data = _input(tmp_path).read_bytes()
    with running(store.uri, tmp_path) as server, httpx.Client(base_url=server.url) as client:
        for name, pair in API_LABELS.items():
            batch = score(
                Predictor.from_store(store, name),
                str(_input(tmp_path)),
                str(tmp_path / f"{name}.parquet"),
            )
            assert batch.scored == 4
            _, rows = _read(tmp_path / f"{name}.parquet")
            expected = [row[2] for row in rows]
            assert expected == [pair[1], pair[0], pair[0], pair[1]]
            url = f"/api/v1/models/{name}/predict"
            answer = client.post(url, json={"inputs": [GC, AT]}).json()
            assert [p["label"] for p in answer["predictions"]] == [pair[1], pair[0]]
            files = {"file": ("in.csv", data)}
            body = client.post(f"/api/v1/models/{name}/predict-file", files=files).json()
            assert [p["label"] for p in body["predictions"]] == expected
            reply = client.post(
                f"/api/v1/models/{name}/predict-file", files=files, headers={"accept": "text/csv"}
            )
            table = list(csv.reader(io.StringIO(reply.text, newline="")))
            assert [row[3] for row in table[1:] if row[3]] == expected
