"""Hostile files through the readers and through a real server's upload routes.

The corpus is ``tests/files/hostile/`` (its README lists each file, what it tests and the
expected outcome); the big files are generated here into a temporary folder. Every file gets
either a clear whole-file error (4xx problem+json from the API, an error page from the UI) or
per-record errors, with every good record still scored — never a 5xx or a traceback. A 2 GiB
streamed upload is cut off at the configured limit without the server buffering it.
"""

from __future__ import annotations

import re
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from markupsafe import escape

from helixserve.errors import FileTooLarge, InvalidFile, InvalidImage
from helixserve.inputs import (
    BadRecord,
    ImageSchema,
    Record,
    SequenceSchema,
    decode_image,
    read_sequences,
    validate_records,
)
from tests.support import hostile
from tests.support.server import Running, running

ZOO = Path(__file__).resolve().parents[1] / "src" / "helixserve" / "zoo" / "store"
HOSTILE = hostile.FOLDER
MiB = 1024 * 1024
LIMITS = {
    "max_upload_bytes": 32 * MiB,
    "max_decompressed_bytes": 4 * MiB,
    "max_upload_records": 100_000,
}
PRIMER = SequenceSchema(length=50)

BINARY = (
    "file looks binary, not text (byte 0x00 at offset {offset}, and {control} of the first "
    "{head} bytes are control bytes). Expected FASTA, CSV/TSV or plain text, optionally "
    "gzip-compressed."
)
TRUNCATED = (
    "record 3 (id r3), line 5: file is truncated or damaged: the compressed data ends after line "
    "5 (Compressed file ended before the end-of-stream marker was reached). Records read before "
    "that point are kept; upload the complete file to score the rest."
)
NUL = (
    "record 2 (id r2), line 3: line 4: column 21 holds a NUL byte (0x00), which does not "
    "belong in a text file; the file may be corrupted or not text."
)
LATIN1 = (
    "record 2, line 3: column 4 holds byte 0xE9, which is not valid UTF-8; save the file "
    "as UTF-8 (in Excel: 'CSV UTF-8') and upload it again."
)
QUOTE = (
    'record 2, line 3: line 3 opens a quote (") that no line within 100 closes; close the '
    "quote or remove it. The lines after it were read as rows."
)
NO_SEQUENCE = (
    "record 2 (id r2), line 3: FASTA record has no sequence: its header is followed by another "
    "header or the end of the file. Add the sequence below the header, or delete the header."
)
NOT_DNA = (
    "record 5 (id =cmd|' /C calc'!A0), line 6: DNA sequence is not valid DNA: position 5 "
    "is 'X'. Only the letters A, C, G, T are allowed; remove it or correct the typo."
)
NO_HEADER = (
    "line 1: this line is not a FASTA header: a FASTA file starts with a line such as '>seq1', "
    "got 'CGACCGAACTCCAAAAAAAAAAAAAAAAAA'. Add a '>name' line above each sequence, or upload the "
    "file as plain text (one sequence per line)."
)

# file -> (whole-file error, or (ids of good records, {index: message of a bad record}))
Outcome = str | tuple[list[str | None], dict[int, str]]
DNA_FILES: dict[str, Outcome] = {
    "truncated.fasta.gz": (["r1", "r2"], {3: TRUNCATED}),
    "zeros-10mb.gz": BINARY.format(offset=0, control="8,192", head="8,192"),
    "nested-bomb.gz.gz": BINARY.format(offset=3, control="4,115", head="8,192"),
    "no-headers.fasta": NO_HEADER,
    "nul-bytes.fasta": (["r1", "r3"], {2: NUL}),
    "binary-nuls.csv": BINARY.format(offset=0, control="208", head="2,048"),
    "latin1-in-utf8.csv": (["café-1", "naïve-3"], {2: LATIN1}),
    "bom-crlf.csv": (["a", "b"], {}),
    "cr-only.tsv": (["x", "y"], {}),
    "utf16.csv": BINARY.format(offset=3, control="111", head="224"),
    "formula-cells.csv": (['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)"], {5: NOT_DNA}),
    "polyglot-gif.csv": BINARY.format(offset=7, control="34", head="155"),
    "polyglot-zip.csv": BINARY.format(offset=123, control="73", head="243"),
    "unclosed-quote.csv": (["a", "c"], {2: QUOTE}),
    "header-only.fasta": (["r1", "r3"], {2: NO_SEQUENCE}),
    "png-bomb-20000.png": BINARY.format(offset=8, control="106", head="157"),
}


def outcome_of_reading(path: Path, **options: Any) -> Outcome:
    """What the readers make of a file, in the shape of :data:`DNA_FILES`."""
    try:
        items = list(validate_records(read_sequences(path, **options), PRIMER))
    except InvalidFile as err:
        return str(err)
    good = [item.id for item in items if isinstance(item, Record)]
    bad = {item.index: str(item.error) for item in items if isinstance(item, BadRecord)}
    return good, bad


@pytest.mark.parametrize("name", sorted(DNA_FILES))
def test_readers_on_hostile_files(name: str) -> None:
    assert outcome_of_reading(HOSTILE / name) == DNA_FILES[name]


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated big files (never committed)."""
    folder = tmp_path_factory.mktemp("hostile-big")
    hostile.text_bomb(folder / "text-bomb.txt.gz", 32 * MiB)
    hostile.million_columns(folder / "million-columns.csv")
    hostile.png_bomb_complete(folder / "png-bomb-complete.png")
    hostile.png_bomb_complete(folder / "png-bomb-9400.png", side=9400)
    return folder


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


class PeakRss(threading.Thread):
    """Samples this process's RSS (the test server runs in it) while the block runs."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.before = self.peak = rss_bytes()
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.002):
            self.peak = max(self.peak, rss_bytes())

    def __enter__(self) -> PeakRss:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.join()
        self.peak = max(self.peak, rss_bytes())

    @property
    def growth(self) -> int:
        return self.peak - self.before


def bomb_message(limit: int) -> str:
    return (
        f"file decompresses to more than {limit:,} bytes, the limit for a compressed file "
        "(HELIXSERVE_MAX_DECOMPRESSED_BYTES); it may be a gzip bomb. Split it into smaller "
        "files, or score it with `helixserve predict`."
    )


def test_gzip_bomb_stops_at_the_decompression_limit(big: Path) -> None:
    path = big / "text-bomb.txt.gz"
    assert path.stat().st_size < MiB  # 32 MiB of text in well under 1 MiB
    with pytest.raises(FileTooLarge) as info:
        for _ in read_sequences(path, max_decompressed=MiB):
            pass
    assert str(info.value) == bomb_message(MiB)
    records = sum(1 for _ in read_sequences(path))  # no limit given: trusted local file
    assert records == 1000 * (32 * MiB // 51_000 + 1)


def test_a_million_columns(big: Path) -> None:
    outcome = outcome_of_reading(big / "million-columns.csv")
    assert outcome == ([None, None], {})


PILLOW_BOMB = (
    "image is too large to decode safely (Image size (400000000 pixels) exceeds limit of "
    "178956970 pixels, could be decompression bomb DOS attack); this looks like a decompression "
    "bomb or a huge scan. Downscale it to about 64 x 64 pixels."
)
OVER_LIMIT = (
    "image is 9,400 x 9,400 pixels (88,360,000 pixels), over the limit of {limit}; this looks "
    "like a decompression bomb or a huge scan. Downscale it to about 64 x 64 pixels."
)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("png-bomb-20000.png", PILLOW_BOMB),
        ("png-bomb-complete.png", PILLOW_BOMB),
        ("png-bomb-9400.png", OVER_LIMIT.format(limit="10,000,000")),
    ],
)
def test_png_bombs_are_refused_before_decoding(name: str, message: str, big: Path) -> None:
    data = (HOSTILE / name if (HOSTILE / name).exists() else big / name).read_bytes()
    with PeakRss() as memory, pytest.raises(InvalidImage) as info:
        decode_image(data, ImageSchema(width=64, height=64), max_pixels=10_000_000)
    assert str(info.value) == message
    assert memory.growth < 50 * MiB  # decoding would take 88 to 400 MB: nothing was decoded


def test_pixel_limit_decides_above_pillows_warning_level() -> None:
    """90 M pixels: Pillow only warns; the configured limit decides (it used to be an error)."""
    header = hostile.png_header(9_500, 9_500, zlib.compress(b"\0" * 100))
    schema = ImageSchema(width=64, height=64)
    with pytest.raises(InvalidImage) as info:
        decode_image(header, schema, max_pixels=80_000_000)
    assert str(info.value).startswith("image is 9,500 x 9,500 pixels (90,250,000 pixels), over")
    with pytest.raises(InvalidImage) as info:
        decode_image(header, schema, max_pixels=100_000_000)  # allowed: then its data is short
    assert str(info.value).startswith("image data is truncated or corrupt")


# --- the same files through a real server ---------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with running(ZOO, tmp_path_factory.mktemp("hostile"), access_log=False, **LIMITS) as s:
        yield s


UI_TOKEN = "hostile-tests-form-token"


@pytest.fixture
def client(server: Running) -> Iterator[httpx.Client]:
    """A client that posts UI forms as a browser on one of the pages would (CSRF cookie)."""
    with httpx.Client(base_url=server.url, timeout=60, cookies={"hs_csrf": UI_TOKEN}) as c:
        yield c


def upload(client: httpx.Client, model: str, name: str, data: bytes, **kw: Any) -> httpx.Response:
    return client.post(f"/api/v1/models/{model}/predict-file", files={"file": (name, data)}, **kw)


@pytest.mark.parametrize("name", sorted(DNA_FILES))
def test_api_upload_of_hostile_files(client: httpx.Client, name: str) -> None:
    reply = upload(client, "primer-binding", name, (HOSTILE / name).read_bytes())
    expected = DNA_FILES[name]
    assert "Traceback" not in reply.text
    if isinstance(expected, str):
        assert (reply.status_code, reply.headers["content-type"]) == (
            422,
            "application/problem+json",
        )
        assert reply.json()["detail"] == expected
        return
    assert reply.status_code == 200
    body = reply.json()
    good, bad = expected
    assert [p["id"] for p in body["predictions"]] == good  # every good record scored
    assert {e["index"]: e["message"] for e in body["errors"]} == bad
    assert body["records"] == len(good) + len(bad)


def test_ui_upload_of_hostile_files(client: httpx.Client) -> None:
    for name, expected in DNA_FILES.items():
        data = (HOSTILE / name).read_bytes()
        reply = client.post(
            "/models/primer-binding/upload",
            files={"file": (name, data)},
            data={"csrf_token": UI_TOKEN},
        )
        assert "Traceback" not in reply.text
        if isinstance(expected, str):
            assert reply.status_code == 422, name
            assert str(escape(expected)) in reply.text
            continue
        assert reply.status_code == 303, name
        page = client.get(reply.headers["location"])
        counts = dict(re.findall(r'id="count-(\w+)"[^>]*>(\d+)<', page.text))
        good, bad = expected
        assert counts == {
            "records": str(len(good) + len(bad)),
            "predicted": str(len(good)),
            "failed": str(len(bad)),
        }, name
        for message in bad.values():
            assert str(escape(message)) in page.text


def test_undecodable_first_line_is_echoed_safely(client: httpx.Client) -> None:
    """The 'not a FASTA header' message quotes the line: an undecodable byte in it used to reach
    the JSON encoder as a lone surrogate (a 500)."""
    reply = upload(client, "primer-binding", "x.fasta", b"\xffACGT\nACGT\n")
    assert reply.status_code == 422
    assert reply.json()["detail"].startswith(
        "line 1: this line is not a FASTA header: a FASTA file starts with a line such as "
        "'>seq1', got '\\udcffACGT'."
    )


def test_ui_downloads_whatever_the_upload_is_named(client: httpx.Client) -> None:
    data = (HOSTILE / "bom-crlf.csv").read_bytes()
    names = {"文件.csv": "__-results.csv", 'a"b\\c;.csv': "a_22b_c_-results.csv"}  # httpx: %22
    for name, plain in names.items():
        reply = client.post(
            "/models/primer-binding/upload",
            files={"file": (name, data)},
            data={"csrf_token": UI_TOKEN},
        )
        download = client.get(reply.headers["location"] + "/results.csv")
        assert download.status_code == 200  # a non-Latin-1 name was a 500
        disposition = download.headers["content-disposition"]
        assert disposition.startswith(f"attachment; filename=\"{plain}\"; filename*=UTF-8''")


def test_formula_cells_are_neutralised_in_spreadsheet_safe_csv_results(
    client: httpx.Client,
) -> None:
    data = (HOSTILE / "formula-cells.csv").read_bytes()
    csv_ = {"accept": "text/csv"}
    reply = upload(client, "primer-binding", "f.csv", data, headers=csv_)
    ids = [line.split(",")[1] for line in reply.text.splitlines()[1:5]]
    assert ids == ['"=HYPERLINK(""http://x"")"', "+1+1", "-2+3", "@SUM(A1)"]  # exact by default
    assert reply.text.splitlines()[5] == f"5,=cmd|' /C calc'!A0,6,,,,,\"{NOT_DNA}\""
    params = {"spreadsheet_safe": "true"}
    reply = upload(client, "primer-binding", "f.csv", data, headers=csv_, params=params)
    ids = [line.split(",")[1] for line in reply.text.splitlines()[1:5]]
    assert ids == ['"\'=HYPERLINK(""http://x"")"', "'+1+1", "'-2+3", "'@SUM(A1)"]
    assert reply.text.splitlines()[5] == f"5,'=cmd|' /C calc'!A0,6,,,,,\"{NOT_DNA}\""


def test_negative_values_stay_numbers_in_csv_results(client: httpx.Client) -> None:
    data = "\n".join(["sequence", "ACGT" * 12 + "AC", "T" * 50, "GC" * 25]).encode()
    reply = upload(client, "yeast-utr", "u.txt", data, headers={"accept": "text/csv"})
    values = [line.split(",")[3] for line in reply.text.splitlines()[1:]]
    assert len(values) == 3 and values[0].startswith("-")  # this model predicts -0.276...
    assert [float(v) for v in values]  # plain numbers: a quoted "'-0.276" would not parse


def test_tabular_rows_mixed_with_hostile_ones(client: httpx.Client) -> None:
    reply = upload(client, "tumor-wisconsin", "t.csv", (HOSTILE / "tumour-mixed.csv").read_bytes())
    body = reply.json()
    assert [p["id"] for p in body["predictions"]] == ["=1+1", "e", "f"]  # NaN: imputed
    assert [(e["index"], e["id"]) for e in body["errors"]] == [(2, "b"), (3, "c"), (4, "d")]
    assert body["errors"][2]["message"] == (
        "record 4 (id d), line 5: clump_thickness must be a finite number, got '1e400'."
    )


def test_images_refused_per_record(client: httpx.Client, big: Path) -> None:
    cases = {
        "png-bomb-20000.png": (HOSTILE / "png-bomb-20000.png").read_bytes(),
        "png-bomb-complete.png": (big / "png-bomb-complete.png").read_bytes(),
    }
    for name, data in cases.items():
        body = upload(client, "rxrx1-celltype", name, data).json()
        assert (body["records"], body["predicted"], body["failed"]) == (1, 0, 1)
        assert body["errors"][0]["message"].startswith(
            "record 1 (id " + name + "), line 1: image is too large to decode safely"
        )
    gif = upload(client, "rxrx1-celltype", "x.csv", (HOSTILE / "polyglot-gif.csv").read_bytes())
    assert gif.json()["errors"][0]["message"] == (
        "record 1 (id x.csv), line 1: file is not a readable image in an accepted format (PNG, "
        "JPEG, TIFF): not a recognised image format. Export it as PNG, JPEG or TIFF and upload "
        "it again."
    )


def test_ui_image_form_never_decodes_a_bomb(client: httpx.Client, big: Path) -> None:
    data = (big / "png-bomb-9400.png").read_bytes()  # 88 M pixels in about 90 KB
    with PeakRss() as memory:
        reply = client.post(
            "/models/rxrx1-celltype/predict",
            files={"image": ("b.png", data)},
            data={"csrf_token": UI_TOKEN},
        )
    assert reply.status_code == 422
    refused = OVER_LIMIT.format(limit="67,108,864").replace("64 x 64", "512 x 512")
    assert str(escape(refused)) in reply.text
    assert memory.growth < 50 * MiB  # neither the preview nor the model decoded it


def test_upload_limits_once_read(client: httpx.Client, big: Path) -> None:
    bomb = upload(client, "primer-binding", "b.txt.gz", (big / "text-bomb.txt.gz").read_bytes())
    assert (bomb.status_code, bomb.json()["detail"]) == (413, bomb_message(4 * MiB))
    many = ("sequence\n" + ("ACGT" * 12 + "AC\n") * 100_001).encode()
    reply = upload(client, "primer-binding", "many.txt", many)
    assert (reply.status_code, reply.json()["detail"]) == (
        413,
        (
            "the file has more than 100,000 records, the limit for one upload "
            "(HELIXSERVE_MAX_UPLOAD_RECORDS); split it, or score it with `helixserve predict`."
        ),
    )
    wide = upload(client, "primer-binding", "w.csv", (big / "million-columns.csv").read_bytes())
    assert (wide.status_code, wide.json()["predicted"]) == (200, 2)


# --- a 2 GiB streamed upload ----------------------------------------------------------------


@pytest.mark.parametrize("declared", [False, True], ids=["chunked", "content-length"])
@pytest.mark.parametrize(
    "path", ["/api/v1/models/primer-binding/predict-file", "/models/primer-binding/upload"]
)
def test_two_gigabyte_upload_is_refused_at_the_limit(
    server: Running, path: str, declared: bool
) -> None:
    total = 2 * 1024 * MiB
    sent = 0

    def body() -> Iterator[bytes]:
        nonlocal sent
        for chunk in hostile.endless(total):
            sent += len(chunk)
            yield chunk

    headers = {"content-type": "multipart/form-data; boundary=x"}
    if declared:
        headers["content-length"] = str(hostile.endless_length(total))
    with PeakRss() as memory:
        reply = httpx.post(server.url + path, content=body(), headers=headers, timeout=60)
    assert reply.status_code == 413
    limit = "33,554,432"
    assert reply.json()["detail"] == (
        f"the upload is {hostile.endless_length(total):,} bytes; the limit is {limit} "
        "(HELIXSERVE_MAX_UPLOAD_BYTES)."
        if declared
        else f"the upload is over the limit of {limit} bytes (HELIXSERVE_MAX_UPLOAD_BYTES)."
    )
    assert sent < 128 * MiB, f"the server read {sent:,} bytes before refusing"
    assert memory.growth < 300 * MiB, "the server buffered the body"
