"""`helixserve predict`: streaming scoring of files, the errors file, and resume after kill -9."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest

from helixserve.batch.predict import BatchError, score
from helixserve.errors import InvalidFile
from helixserve.inputs.images import ImageSchema
from helixserve.runtime.predictor import Prediction, Predictor
from helixserve.store import ModelStore, OutputSchema, make_manifest
from tests.support.onnx_models import image_multiclass_model
from tests.support.server import publish_gc

GC = "GC" * 25


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    store = ModelStore.open(str(tmp_path / "store"), cache_dir=tmp_path / "cache")
    publish_gc(store)
    return store


def random_fasta(path: Path, n: int, seed: int = 0, bad_every: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    letters = np.frombuffer(b"ACGT", dtype=np.uint8)
    seqs = [letters[rng.integers(0, 4, 50)].tobytes().decode() for _ in range(n)]
    if bad_every:
        seqs = [s[:10] + "X" + s[11:] if i % bad_every == 0 else s for i, s in enumerate(seqs)]
    text = "".join(f">s{i}\n{s}\n" for i, s in enumerate(seqs))
    path.write_bytes(gzip.compress(text.encode()) if path.suffix == ".gz" else text.encode())
    return seqs


def test_scores_and_reports_refused_rows(store: ModelStore, tmp_path: Path) -> None:
    data = tmp_path / "in.fa"
    data.write_text(f">a\n{GC}\n>b\nACGF\n>c\n{'AT' * 25}\n>d\n{GC[:-1]}\n")
    summary = score(Predictor.from_store(store, "gc"), str(data), str(tmp_path / "out.csv"))
    assert (summary.scored, summary.refused) == (2, 2)
    assert (tmp_path / "out.csv").read_text().splitlines() == [
        "index,id,label,probability,p_0,p_1",
        "1,a,1,0.999996,0.000004,0.999996",
        "3,c,0,0.999996,0.999996,0.000004",
    ]
    assert (tmp_path / "out.errors.csv").read_text().splitlines() == [
        "index,id,line,field,position,message",
        '2,b,3,sequence,4,"record 2 (id b), line 3: DNA sequence is not valid DNA: position 4 is '
        "'F'. Only the letters A, C, G, T are allowed; remove it or correct the typo.\"",
        '4,d,7,sequence,,"record 4 (id d), line 7: DNA sequence length is 49 nt, but this model '
        'needs exactly 50 nt; extend it to 50 nt."',
    ]
    assert not (tmp_path / "out.csv.parts").exists()


def test_output_matches_the_predictor_and_ignores_chunk_size(
    store: ModelStore, tmp_path: Path
) -> None:
    data = tmp_path / "in.fa.gz"
    seqs = random_fasta(data, 500, bad_every=37)
    predictor = Predictor.from_store(store, "gc")
    score(predictor, str(data), str(tmp_path / "a.csv"), batch_size=7)
    score(predictor, str(data), str(tmp_path / "b.csv"), batch_size=1000)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert (tmp_path / "a.errors.csv").read_bytes() == (tmp_path / "b.errors.csv").read_bytes()
    rows = (tmp_path / "a.csv").read_text().splitlines()[1:]
    expected = [r for r in predictor.predict(seqs) if isinstance(r, Prediction)]
    assert len(rows) == len(expected) == 500 - len(range(0, 500, 37))
    for row, want in zip(rows, expected, strict=True):
        assert float(row.split(",")[5]) == pytest.approx((want.probabilities or {})["1"], abs=1e-6)


def test_tabular_csv(tmp_path: Path) -> None:
    zoo = Path(__file__).resolve().parents[1] / "src" / "helixserve" / "zoo" / "store"
    predictor = Predictor.from_store(
        ModelStore.open(str(zoo), cache_dir=tmp_path / "c"), "tumor-wisconsin"
    )
    names = [f.name for f in predictor.manifest.input.features]  # type: ignore[union-attr]
    data = tmp_path / "t.csv"
    data.write_text("id," + ",".join(names) + "\n7,5,1,1,1,2,1,3,1,1\n8,5,1,1,1,2,?,3,1,11\n")
    summary = score(predictor, str(data), str(tmp_path / "t.out.tsv"))
    assert (summary.scored, summary.refused) == (1, 1)
    lines = (tmp_path / "t.out.tsv").read_text().splitlines()
    assert lines[0].split("\t")[:3] == ["index", "id", "label"]
    assert lines[1].split("\t")[:3] == ["1", "7", "benign"]
    assert "mitoses is 11, above the maximum 10" in (tmp_path / "t.out.errors.tsv").read_text()


def test_image_models_are_refused(tmp_path: Path) -> None:
    store = ModelStore.open(str(tmp_path / "store"), cache_dir=tmp_path / "cache")
    files = {"model.onnx": image_multiclass_model(1, 8, 8, 2), "card.md": b"# x\n"}
    store.publish(
        make_manifest(
            files,
            name="img",
            task="multiclass",
            input=ImageSchema(width=8, height=8),
            output=OutputSchema(labels=["a", "b"]),
        ),
        files,
    )
    (tmp_path / "x.csv").write_text("sequence\nACGT\n")
    with pytest.raises(BatchError) as caught:
        score(Predictor.from_store(store, "img"), str(tmp_path / "x.csv"), str(tmp_path / "o.csv"))
    assert str(caught.value) == (
        "`helixserve predict` scores sequence and table files; image models take one image per "
        "request (use the API or the web page)."
    )


def _cli(store: ModelStore, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HELIXSERVE_CACHE_DIR": str(store.cache_dir)}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "helixserve",
            "predict",
            "gc",
            *args,
            "--store",
            store.uri,
            "--batch-size",
            "2000",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_resume_after_kill_9_gives_identical_output(store: ModelStore, tmp_path: Path) -> None:
    data = tmp_path / "big.fa.gz"
    random_fasta(data, 120_000, seed=3, bad_every=1013)
    whole = _cli(store, str(data), "-o", str(tmp_path / "whole.csv"))
    assert whole.wait(timeout=300) == 0, whole.stderr.read() if whole.stderr else ""
    run = _cli(store, str(data), "-o", str(tmp_path / "cut.csv"))
    journal = tmp_path / "cut.csv.parts" / "journal.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if journal.exists() and json.loads(journal.read_text())["chunks"] >= 5:
            break
        time.sleep(0.02)
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    committed = json.loads(journal.read_text())["chunks"]
    assert 5 <= committed < 60 and not (tmp_path / "cut.csv").exists()
    again = _cli(store, str(data), "-o", str(tmp_path / "cut.csv"))
    _, err = again.communicate(timeout=300)
    assert again.returncode == 1
    assert err.decode().startswith("Error: an unfinished run of this output is in ")
    resumed = _cli(store, str(data), "-o", str(tmp_path / "cut.csv"), "--resume")
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err.decode()
    assert f"(resumed after record {committed * 2000:,})" in err.decode()
    assert (tmp_path / "cut.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()
    assert (tmp_path / "cut.errors.csv").read_bytes() == (
        tmp_path / "whole.errors.csv"
    ).read_bytes()


def test_resume_refuses_a_changed_input(store: ModelStore, tmp_path: Path) -> None:
    data = tmp_path / "in.fa"
    random_fasta(data, 50)
    parts = tmp_path / "out.csv.parts"
    parts.mkdir()
    (parts / "journal.json").write_text(
        json.dumps(
            {
                "version": 2,
                "input": str(data),
                "input_stamp": "0:0",
                "model": "gc@1",
                "model_sha256": "x",
                "batch_size": 4096,
                "chunks": 1,
                "records": 10,
                "scored": 10,
                "refused": 0,
            }
        )
    )
    with pytest.raises(BatchError) as caught:
        score(Predictor.from_store(store, "gc"), str(data), str(tmp_path / "out.csv"), resume=True)
    assert str(caught.value) == (
        f"cannot resume: the input_stamp, model_sha256 changed since the interrupted run (journal "
        f"{parts / 'journal.json'}). Delete {parts} to start again."
    )


def _parquet(path: Path, columns: Mapping[str, Sequence[object]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table(columns), str(path), row_group_size=3)


def test_parquet_in_parquet_out_matches_csv(store: ModelStore, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    seqs = random_fasta(tmp_path / "in.fa", 10, seed=5)
    seqs[4] = seqs[4][:7] + "Z" + seqs[4][8:]
    _parquet(tmp_path / "in.parquet", {"name": [f"s{i}" for i in range(10)], "seq": seqs})
    (tmp_path / "in.csv").write_text(
        "name,seq\n" + "".join(f"s{i},{s}\n" for i, s in enumerate(seqs))
    )
    predictor = Predictor.from_store(store, "gc")
    summary = score(
        predictor, str(tmp_path / "in.parquet"), str(tmp_path / "out.parquet"), batch_size=4
    )
    score(predictor, str(tmp_path / "in.csv"), str(tmp_path / "ref.csv"), batch_size=4)
    assert (summary.scored, summary.refused, summary.errors) == (
        9,
        1,
        str(tmp_path / "out.errors.csv"),
    )
    table = pq.read_table(str(tmp_path / "out.parquet"))
    assert [str(t) for t in table.schema.types] == [
        "int64",
        "string",
        "string",
        "double",
        "double",
        "double",
    ]
    expected = (tmp_path / "ref.csv").read_text().splitlines()
    assert table.column_names == expected[0].split(",")
    got = [
        ",".join(f"{v:.6f}" if isinstance(v, float) else str(v) for v in row.values())
        for row in table.to_pylist()
    ]
    assert got == expected[1:]
    assert (tmp_path / "out.errors.csv").read_text().splitlines()[1] == (
        "5,s4,,sequence,8,\"record 5 (id s4): DNA sequence is not valid DNA: position 8 is 'Z'. "
        'Only the letters A, C, G, T are allowed; remove it or correct the typo."'
    )


def test_tabular_parquet_and_gzip_output(tmp_path: Path) -> None:
    zoo = Path(__file__).resolve().parents[1] / "src" / "helixserve" / "zoo" / "store"
    predictor = Predictor.from_store(
        ModelStore.open(str(zoo), cache_dir=tmp_path / "c"), "tumor-wisconsin"
    )
    names = [f.name for f in predictor.manifest.input.features]  # type: ignore[union-attr]
    rows = [
        [5, 1, 1, 1, 2, 1, 3, 1, 1],
        [8, 10, 10, 8, 7, 10, 9, 7, 1],
        [5, 1, 1, 1, 2, 1, 3, 1, 11],
    ]
    features = {n: [r[k] for r in rows] for k, n in enumerate(names)}
    _parquet(tmp_path / "t.parquet", {"id": ["a", "b", "c"], **features})
    summary = score(predictor, str(tmp_path / "t.parquet"), str(tmp_path / "t.out.csv.gz"))
    assert (summary.scored, summary.refused) == (2, 1)
    lines = gzip.decompress((tmp_path / "t.out.csv.gz").read_bytes()).decode().splitlines()
    assert [line.split(",")[:3] for line in lines] == [
        ["index", "id", "label"],
        ["1", "a", "benign"],
        ["2", "b", "malignant"],
    ]
    errors = gzip.decompress((tmp_path / "t.out.errors.csv.gz").read_bytes()).decode()
    assert "record 3 (id c): mitoses is 11, above the maximum 10" in errors


def test_numbers_are_not_neutralised_but_formulas_are() -> None:
    from helixserve.inputs.table import csv_safe

    assert [csv_safe(c) for c in ["-0.25", "+1e-3", "-7", "=1+1", "-1+2", "@SUM(A1)", "x"]] == [
        "-0.25",
        "+1e-3",
        "-7",
        "'=1+1",
        "'-1+2",
        "'@SUM(A1)",
        "x",
    ]


def test_damaged_parquet_keeps_the_rows_before_the_damage(
    store: ModelStore, tmp_path: Path
) -> None:
    seqs = random_fasta(tmp_path / "in.fa", 40, seed=9)
    _parquet(tmp_path / "in.parquet", {"sequence": seqs})  # row groups of 3 rows
    import pyarrow.parquet as pq

    data = bytearray((tmp_path / "in.parquet").read_bytes())
    page = pq.ParquetFile(str(tmp_path / "in.parquet")).metadata.row_group(7).column(0)
    start = page.data_page_offset
    data[start : start + 40] = b"\xff" * 40  # the 8th row group's page header and data
    (tmp_path / "bad.parquet").write_bytes(bytes(data))
    with pytest.raises(InvalidFile) as caught:
        score(
            Predictor.from_store(store, "gc"),
            str(tmp_path / "bad.parquet"),
            str(tmp_path / "out.csv"),
            batch_size=3,
        )
    assert str(caught.value).startswith("the Parquet file is damaged after row ")
    journal = json.loads((tmp_path / "out.csv.parts" / "journal.json").read_text())
    assert 0 < journal["records"] < 40  # the rows before the damage are committed
