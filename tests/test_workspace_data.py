"""Datasets in the workspace: stored blobs and profiles (docs/design/workspace.md).

Tiny real files for each format, exact error text, a hypothesis round-trip, one S3 test against
the real SeaweedFS server, and the real yeast UTR file from ../shared/data (profiled, split by
subsets, and profiled again with its split column). Subsets: tests/test_workspace_subsets.py.
"""

from __future__ import annotations

import gzip
import io
import uuid
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image

from helixserve.error_table import row_for
from helixserve.errors import (
    DatasetNotFound,
    EmptyDataset,
    EmptySubset,
    FileTooLarge,
    InvalidFile,
    InvalidFilename,
    InvalidName,
    InvalidSubset,
    RequestTooLarge,
    SplitOverlap,
)
from helixserve.store.datasets import CHUNK, DatasetBlobs
from helixserve.workspace.rows import ProfileLimits
from helixserve.workspace.subsets import (
    columns_of,
    parse_subset,
    rows,
    split_labels,
    subset_table,
)
from helixserve.workspace.tables import MAX_REFUSED, PREVIEW_ROWS, profile
from tests.conftest import s3_options, write
from tests.support.s3server import S3Server

SEQ = "ACGTACGTAC"
MIXED = (
    "name,sequence,score,split,kind,note\n"
    f"r1,{SEQ},1.5,T,a,first row\n"
    f"r2,{SEQ}GG,2,T,b,second one\n"
    f"r3,{SEQ},-0.5,V,a,third\n"
    f"r4,{SEQ}A,3,test,b,\n"
    f"r5,{SEQ},4,V,a,fifth row here\n"
)


# --- store: content-addressed blobs --------------------------------------------------------------


class CountingStream(io.BytesIO):
    """A stream that remembers how many bytes were read from it."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.taken = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.taken += len(chunk)
        return chunk


def stored_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=3 * CHUNK // 2) | st.sampled_from([b"", b"x" * CHUNK]))
def test_put_then_open_gives_the_bytes_back(tmp_path: Path, data: bytes) -> None:
    blobs = DatasetBlobs(str(tmp_path / uuid.uuid4().hex))
    blob = blobs.put(io.BytesIO(data), "d.csv", limit_bytes=2 * CHUNK)
    assert (blob.size, blob.filename) == (len(data), "d.csv")
    with blobs.open(blob.sha256) as handle:
        assert handle.read() == data
    assert blobs.exists(blob.sha256)
    assert blobs.local_copy(blob.sha256, tmp_path / "cache").read_bytes() == data


def test_same_bytes_are_stored_once_under_their_sha256(tmp_path: Path) -> None:
    blobs = DatasetBlobs(str(tmp_path / "store"))
    first = blobs.put(io.BytesIO(MIXED.encode()), "mixed.csv", limit_bytes=10_000)
    again = blobs.put(io.BytesIO(MIXED.encode()), "renamed.csv", limit_bytes=10_000)
    assert again == first  # the first name is kept, no second copy
    hexdigest = first.sha256
    assert stored_files(tmp_path / "store") == [
        f"datasets/sha256/{hexdigest[:2]}/{hexdigest}/mixed.csv"
    ]
    path = blobs.local_copy(hexdigest, tmp_path / "unused")
    assert path == tmp_path / "store" / "datasets" / "sha256" / hexdigest[:2] / hexdigest / (
        "mixed.csv"
    )


def test_put_refuses_a_file_over_the_limit_early_and_keeps_nothing(tmp_path: Path) -> None:
    blobs = DatasetBlobs(str(tmp_path / "store"))
    stream = CountingStream(b"x" * (10 * CHUNK))
    with pytest.raises(RequestTooLarge) as info:
        blobs.put(stream, "big.csv", limit_bytes=CHUNK + 1)
    assert str(info.value) == (
        "dataset file big.csv is over the limit of 1,048,577 bytes; upload a smaller file "
        "(compress it with gzip, or split it)."
    )
    assert stream.taken == 2 * CHUNK  # stopped at the first chunk past the limit
    assert stored_files(tmp_path / "store") == []
    assert row_for(info.value) is not None and row_for(info.value).status == 413  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("filename", "problem"),
    [
        ("", "is empty or starts or ends with a space"),
        (" a.csv", "is empty or starts or ends with a space"),
        ("a/b.csv", "holds a path separator ('/' or '\\')"),
        ("a\\b.csv", "holds a path separator ('/' or '\\')"),
        ("..", "holds '..'"),
        ("a..csv", "holds '..'"),
        ("a\x00.csv", "holds control characters"),
        ("x" * 256, "is longer than 255 bytes"),
    ],
)
def test_file_names_are_plain_names(tmp_path: Path, filename: str, problem: str) -> None:
    blobs = DatasetBlobs(str(tmp_path / "store"))
    with pytest.raises(InvalidFilename) as info:
        blobs.put(io.BytesIO(b"a"), filename, limit_bytes=10)
    shown = repr(filename[:80] + ("..." if len(filename) > 80 else ""))
    assert str(info.value) == (
        f"file name {shown} is not allowed: it {problem}. Upload the file under a plain name "
        "such as 'utrs.csv.gz' (letters, digits, '.', '_', '-')."
    )
    assert not (tmp_path / "store" / "datasets" / "sha256").exists()


def test_unknown_and_malformed_ids(tmp_path: Path) -> None:
    blobs = DatasetBlobs(str(tmp_path / "store"))
    missing = "ab" * 32
    with pytest.raises(DatasetNotFound) as info:
        blobs.open(missing)
    assert str(info.value) == (
        f"no dataset file with sha256 {missing} in the store {blobs.uri}; upload the file "
        "again, or check the dataset version's id."
    )
    assert row_for(info.value).status == 404  # type: ignore[union-attr]
    assert not blobs.exists(missing)
    with pytest.raises(InvalidName, match=r"^dataset id '\.\./etc' is not a sha256"):
        blobs.local_copy("../etc", tmp_path)


def test_blobs_on_s3_stream_in_and_copy_out_verified(s3_server: S3Server, tmp_path: Path) -> None:
    root = f"s3://models/datasets-{uuid.uuid4().hex}"
    blobs = DatasetBlobs(root, s3=s3_options(s3_server))
    data = (MIXED * 40_000).encode()  # 6 MB: more than one multipart block
    blob = blobs.put(io.BytesIO(data), "mixed.csv", limit_bytes=len(data))
    assert blobs.put(io.BytesIO(data), "other.csv", limit_bytes=len(data)) == blob
    left = blobs.location.fs.find(f"{root.removeprefix('s3://')}/datasets/tmp")
    assert [p for p in left if p.endswith(".part")] == []
    with blobs.open(blob.sha256) as handle:
        assert handle.read() == data
    copy = blobs.local_copy(blob.sha256, tmp_path / "cache")
    assert copy == tmp_path / "cache" / blob.sha256 / "mixed.csv"
    assert copy.read_bytes() == data
    copy.write_bytes(b"damaged")  # a damaged cached copy is fetched again
    assert blobs.local_copy(blob.sha256, tmp_path / "cache").read_bytes() == data
    with pytest.raises(RequestTooLarge):
        blobs.put(io.BytesIO(data + b"x"), "mixed.csv", limit_bytes=len(data))


# --- profiles ------------------------------------------------------------------------------------


def test_profile_detects_every_role(tmp_path: Path) -> None:
    result = profile(write(tmp_path / "mixed.csv", MIXED), "mixed.csv")
    assert result.roles() == {
        "name": "id",
        "sequence": "sequence",
        "score": "number",
        "split": "split",
        "kind": "category",
        "note": "text",
    }
    assert (result.format, result.rows, result.good_rows, result.refused_rows) == ("csv", 5, 5, 0)
    score = result.columns[2]
    assert (score.min, score.max, score.distinct, score.examples[:2]) == (
        -0.5,
        4.0,
        5,
        ["1.5", "2"],
    )
    sequence = result.columns[1]
    assert (sequence.min_length, sequence.max_length, sequence.distinct) == (10, 12, 3)
    assert result.columns[5].missing == 1
    assert result.preview[0] == {
        "name": "r1",
        "sequence": SEQ,
        "score": "1.5",
        "split": "T",
        "kind": "a",
        "note": "first row",
    }


def fasta_text() -> str:
    return f">s1 first one\n{SEQ}\nACGT\n>s2\n{SEQ}\n>s3 a bad one\nACGTXX\n"


def image_zip(path: Path) -> Path:
    png = io.BytesIO()
    Image.new("L", (8, 8), 7).save(png, "PNG")
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(
            "set/labels.csv",
            "image,cell\nimg/a.png,HUVEC\nimg/b.png,RPE\nimg/a.png,RPE\nmissing.png,RPE\n",
        )
        archive.writestr("set/img/a.png", png.getvalue())
        archive.writestr("set/img/b.png", png.getvalue())
    return path


def parquet_file(path: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"seq": [SEQ, SEQ + "G", "NOTDNA!"], "y": [1.0, None, 2.5]})
    pq.write_table(table, path)
    return path


@pytest.mark.parametrize(
    ("name", "make", "expected"),
    [
        ("d.tsv.gz", lambda p: write(p, MIXED.replace(",", "\t"), gz=True), ("tsv", 5, 5)),
        ("d.fa.gz", lambda p: write(p, fasta_text(), gz=True), ("fasta", 3, 2)),
        ("d.txt", lambda p: write(p, f"sequence\n{SEQ}\n{SEQ}T\n"), ("text", 2, 2)),
        ("d.parquet", parquet_file, ("parquet", 3, 2)),
        ("d.zip", image_zip, ("images", 4, 3)),
    ],
)
def test_profile_reads_every_format(
    tmp_path: Path, name: str, make: object, expected: object
) -> None:
    path = make(tmp_path / name)  # type: ignore[operator]
    result = profile(path, name)
    assert (result.format, result.rows, result.good_rows) == expected


def test_a_semicolon_separated_csv_has_its_columns(tmp_path: Path) -> None:
    """A spreadsheet saved with ';' (a comma is the decimal mark there) is not one column."""
    path = write(tmp_path / "semi.csv", f"UTR;growth\n{SEQ};0.1\n{SEQ}A;0.2\n")
    result = profile(path, "semi.csv")
    assert (result.format, result.rows, result.good_rows) == ("csv", 2, 2)
    assert result.roles() == {"UTR": "sequence", "growth": "number"}


def test_profile_of_fasta_parquet_and_images_roles(tmp_path: Path) -> None:
    fasta = profile(write(tmp_path / "d.fa", fasta_text()), "d.fa")
    assert fasta.roles() == {"id": "id", "sequence": "sequence", "description": "text"}
    assert fasta.refused[0].model_dump() == {
        "row": 3,
        "id": "s3",
        "line": 6,
        "message": "column sequence: DNA sequence is not valid DNA: position 5 is 'X' (1 more "
        "invalid character after it). Only the letters A, C, G, T, N, R, Y, S, W, K, M, B, D, "
        "H, V are allowed; remove it or correct the typo.",
    }
    parquet = profile(parquet_file(tmp_path / "d.parquet"), "d.parquet")
    assert parquet.roles() == {"seq": "sequence", "y": "number"}
    assert (parquet.refused[0].row, parquet.refused[0].line) == (3, None)
    images = profile(image_zip(tmp_path / "d.zip"), "d.zip")
    assert images.roles() == {"image": "image", "cell": "category"}
    assert images.refused[0].message == (
        "image 'missing.png' is not in the zip; check the path (relative to the labels table's "
        "folder) and the file name's case."
    )


def test_ambiguity_codes_are_good_rows_and_other_letters_are_not(tmp_path: Path) -> None:
    """N and the IUPAC codes are DNA (whether a model takes them is its recipe's rule, as for
    ``helixserve train``); a letter outside them refuses its row, naming it."""
    lines = ["name,sequence,score"] + [f"n{i},{SEQ},{i}" for i in range(1, 21)]
    lines += [f"b,{SEQ[:-3]}RYN,21", f"c,{SEQ[:-1]}J,22"]
    result = profile(write(tmp_path / "d.csv", "\n".join(lines) + "\n"), "d.csv")
    assert result.roles()["sequence"] == "sequence"
    assert (result.rows, result.good_rows, result.refused_rows) == (22, 21, 1)
    assert result.refused[0].message == (
        f"column sequence: DNA sequence is not valid DNA: position {len(SEQ)} is 'J'. Only the "
        "letters A, C, G, T, N, R, Y, S, W, K, M, B, D, H, V are allowed; remove it or correct "
        "the typo."
    )


def test_bad_rows_are_refused_and_never_lose_good_ones(tmp_path: Path) -> None:
    lines = ["name,sequence,score"]
    for i in range(1, 61):
        sequence, score = SEQ, str(i)
        if i % 10 == 3:
            sequence = "ACGTZ"
        if i == 5:
            score = "high"
        lines.append(f"n{i},{sequence},{score}" + (",extra" if i % 10 == 7 else ""))
    result = profile(write(tmp_path / "d.csv", "\n".join(lines) + "\n"), "d.csv")
    assert (result.rows, result.good_rows, result.refused_rows) == (60, 47, 13)
    assert [r.row for r in result.refused[:3]] == [3, 5, 7]
    assert [r.model_dump() for r in result.refused[:3]] == [
        {
            "row": 3,
            "id": "n3",
            "line": 4,
            "message": "column sequence: DNA sequence is not valid DNA: position 5 is 'Z'. Only "
            "the letters A, C, G, T, N, R, Y, S, W, K, M, B, D, H, V are allowed; remove it or "
            "correct the typo.",
        },
        {
            "row": 5,
            "id": "n5",
            "line": 6,
            "message": "column score: score must be a number, got 'high', which is not a number.",
        },
        {
            "row": 7,
            "id": None,
            "line": 8,
            "message": "row has 4 fields but the header has 3 (name, sequence, score); check for "
            "a missing or extra delimiter or an unclosed quote.",
        },
    ]
    assert result.roles() == {"name": "id", "sequence": "sequence", "score": "number"}


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kinds=st.lists(st.sampled_from(["good", "good", "dna", "fields", "blank"]), min_size=1))
def test_refused_rows_are_exactly_the_bad_ones(tmp_path: Path, kinds: list[str]) -> None:
    assume(kinds.count("good") > max(kinds.count("dna"), 0))
    cells = {"good": f"{SEQ},1", "dna": "ACGTJ,2", "fields": f"{SEQ},3,4", "blank": ""}
    text = "sequence,n\n" + "".join(cells[k] + "\n" for k in kinds)
    result = profile(write(tmp_path / f"{uuid.uuid4().hex}.csv", text), "d.csv")
    numbered = [k for k in kinds if k != "blank"]  # blank lines are not rows
    bad = [i for i, k in enumerate(numbered, start=1) if k != "good"]
    assert (result.rows, result.good_rows) == (len(numbered), numbered.count("good"))
    assert [r.row for r in result.refused] == bad


def test_refusals_keep_the_first_thousand_and_count_all(tmp_path: Path) -> None:
    body = "".join(f"{SEQ}\nACGTQ\n" for _ in range(1_500))
    result = profile(write(tmp_path / "d.csv", "sequence\n" + body), "d.csv")
    assert (result.rows, result.good_rows, result.refused_rows) == (3_000, 1_500, 1_500)
    assert len(result.refused) == MAX_REFUSED
    assert result.refused[-1].row == 2 * MAX_REFUSED
    assert len(result.preview) == PREVIEW_ROWS


def test_distinct_counts_are_capped_and_cells_cut(tmp_path: Path) -> None:
    body = "".join(f"id{i},{'x' * 300} {i}\n" for i in range(6_000))
    result = profile(write(tmp_path / "d.csv", "key,note\n" + body), "d.csv")
    key = result.columns[0]
    assert (key.role, key.distinct, key.distinct_capped) == ("id", 5_000, True)
    assert result.columns[1].role == "text"
    assert result.preview[0]["note"] == "x" * 200 + "…"


def test_no_valid_row_names_the_file_and_the_first_refusal(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "a,b\n1,2,3\n4\n")
    with pytest.raises(EmptyDataset) as info:
        profile(path, "upload.csv")
    assert str(info.value) == (
        "dataset file upload.csv: no row is valid, all 2 were refused. The first: record 1, "
        "line 2: row has 3 fields but the header has 2 (a, b); check for a missing or extra "
        "delimiter or an unclosed quote. Fix the file and upload it again."
    )
    assert row_for(info.value).status == 422  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            b"",
            "dataset file up.csv: file is empty: it has no records. Upload a FASTA, CSV/TSV "
            "or one-sequence-per-line text file (optionally gzip-compressed).",
        ),
        (
            b"a,b\n",
            "dataset file up.csv: the file has a header but no data rows; add at least one row.",
        ),
    ],
)
def test_whole_file_errors_name_the_file(tmp_path: Path, content: bytes, message: str) -> None:
    with pytest.raises(InvalidFile) as info:
        profile(write(tmp_path / "x", content), "up.csv")
    assert str(info.value) == message


def test_limits_stop_a_file_that_is_too_big(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "sequence\n" + f"{SEQ}\n" * 50)
    with pytest.raises(FileTooLarge) as info:
        profile(path, "d.csv", ProfileLimits(max_rows=20))
    assert str(info.value) == (
        "dataset file d.csv: it holds more than 20 rows, the limit for one dataset "
        "(HELIXSERVE_MAX_UPLOAD_RECORDS); split it into smaller files."
    )
    gz = write(tmp_path / "d.csv.gz", "sequence\n" + f"{SEQ}\n" * 5_000, gz=True)
    with pytest.raises(FileTooLarge, match=r"^dataset file d\.csv\.gz: file decompresses to more"):
        profile(gz, "d.csv.gz", ProfileLimits(max_decompressed=10_000))


def test_shared_yeast_utrs_profile_and_split_round_trip(shared_data: Path, tmp_path: Path) -> None:
    path = shared_data / "cuperus2017_yeast_utr" / "Native_UTRs.csv.gz"
    result = profile(path, path.name)
    assert (result.format, result.rows, result.good_rows, result.refused_rows) == (
        "csv",
        11_856,
        11_856,
        0,
    )
    assert result.roles() == {
        "": "number",
        "UTR_name": "id",
        "UTR": "sequence",
        "t0": "number",
        "t1": "number",
        "growth_rate": "number",
    }
    utr = result.columns[2]
    assert (utr.min_length, utr.max_length) == (2, 50)
    # the tutorial's split: t0 > 100 (the reliable 6,710), 80% of them to train, the rest to val
    named = {
        "reliable": parse_subset({"kind": "where", "column": "t0", "op": ">", "value": 100}, "r"),
        "train": parse_subset({"kind": "fraction", "of": "reliable", "fraction": 0.8}, "train"),
        "val": parse_subset({"kind": "rest", "of": "reliable", "minus": ["train"]}, "val"),
    }
    table = subset_table(path, path.name, columns_of(named.values()), roles=result.roles())
    train, val = (rows(named[n], table, named, name=n) for n in ("train", "val"))
    assert (table.n_rows, train.size, val.size) == (11_856, 5_368, 1_342)
    labels = split_labels(table.n_rows, ("train", train), ("val", val))
    with gzip.open(path, "rt") as source:
        lines = source.read().splitlines()
    written = [lines[0] + ",__subset"] + [
        f"{ln},{lab}" for ln, lab in zip(lines[1:], labels, strict=True)
    ]
    split_file = write(tmp_path / "with_split.csv", "\n".join(written) + "\n")
    assert profile(split_file, "with_split.csv").roles()["__subset"] == "split"


def test_shared_cell_images_zipped_profile(shared_data: Path, tmp_path: Path) -> None:
    folder = shared_data / "rxrx1_sample_images"
    path = tmp_path / "rxrx1.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.write(folder / "manifest.csv", "manifest.csv")
        for image in sorted((folder / "images").rglob("*.png")):
            archive.write(image, image.relative_to(folder).as_posix())
    result = profile(path, "rxrx1.zip")
    assert (result.format, result.rows, result.good_rows) == ("images", 180, 180)
    roles = result.roles()
    assert (roles["path"], roles["split"], roles["cell_type"], roles["plate"]) == (
        "image",
        "split",
        "category",
        "number",
    )


# --- layering and errors -------------------------------------------------------------------------


def test_new_errors_answer_from_their_bases_rows() -> None:
    statuses = {
        cls.__name__: row_for(cls).status  # type: ignore[union-attr]
        for cls in (
            EmptyDataset,
            InvalidSubset,
            EmptySubset,
            SplitOverlap,
            DatasetNotFound,
            InvalidFilename,
        )
    }
    assert statuses == {
        "EmptyDataset": 422,
        "InvalidSubset": 422,
        "EmptySubset": 422,
        "SplitOverlap": 422,
        "DatasetNotFound": 404,
        "InvalidFilename": 400,
    }
