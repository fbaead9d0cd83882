"""The hostile-file corpus: builders of the small committed files and of the big generated ones.

``python -m tests.support.hostile`` (re)writes the small files into ``tests/files/hostile/``
(they are committed; the builders document how each was made). The big ones — a gzip text bomb,
a CSV with a million columns, a complete 20000 x 20000 PNG bomb — are made by the tests into a
temporary folder and never committed. ``tests/files/hostile/README.md`` lists every file, what it
tests and the expected outcome.
"""

from __future__ import annotations

import gzip
import io
import random
import struct
import sys
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

from PIL import Image

FOLDER = Path(__file__).resolve().parents[1] / "files" / "hostile"
GOOD = "CGACCGAACTCC" + "A" * 38  # 50 nt: binds (carries the motif)
OTHER = "ACGT" * 12 + "AC"  # 50 nt: does not bind
TUMOUR_HEADER = (
    "id,clump_thickness,uniformity_cell_size,uniformity_cell_shape,marginal_adhesion,"
    "single_epithelial_cell_size,bare_nuclei,bland_chromatin,normal_nucleoli,mitoses"
)


def _fasta(*records: tuple[str, str]) -> bytes:
    return "".join(f">{name}\n{seq}\n" for name, seq in records).encode()


def truncated_gzip() -> bytes:
    """Three FASTA records, gzip-compressed, cut inside the third."""
    rng = random.Random(1)
    noise = "".join(rng.choice("ACGT") for _ in range(4000))
    data = _fasta(("r1", GOOD), ("r2", OTHER), ("r3", noise))
    packed = gzip.compress(data, mtime=0)
    return packed[: len(packed) // 2]


def zeros_bomb() -> bytes:
    """10 MiB of zero bytes, gzip-compressed to about 10 KiB."""
    return gzip.compress(b"\0" * (10 * 1024 * 1024), compresslevel=9, mtime=0)


def nested_bomb() -> bytes:
    """The zeros bomb compressed once more (a gzip inside a gzip)."""
    return gzip.compress(zeros_bomb(), compresslevel=9, mtime=0)


def fasta_without_headers() -> bytes:
    return f"{GOOD}\n{OTHER}\n{GOOD}\n".encode()


def nul_bytes() -> bytes:
    """A FASTA file whose second record holds a NUL byte."""
    return _fasta(("r1", GOOD), ("r2", OTHER[:20] + "\0" + OTHER[21:]), ("r3", OTHER))


def binary_with_nuls() -> bytes:
    """A binary file (every other byte NUL) named like a CSV."""
    return bytes(range(256)) * 8


def latin1_in_utf8() -> bytes:
    """A UTF-8 CSV (ids with accents) whose second row was saved as latin-1."""
    rows = [
        b"id,sequence\n",
        f"café-1,{GOOD}\n".encode(),
        f"café-2,{OTHER}\n".encode("latin-1"),
        f"naïve-3,{OTHER}\n".encode(),
    ]
    return b"".join(rows)


def bom_crlf() -> bytes:
    """A UTF-8 CSV with a byte-order mark and Windows (CRLF) line endings."""
    return b"\xef\xbb\xbf" + f"sequence,id\r\n{GOOD},a\r\n{OTHER},b\r\n".encode()


def cr_only() -> bytes:
    """A TSV with old-Mac (CR only) line endings."""
    return f"id\tsequence\rx\t{GOOD}\ry\t{OTHER}\r".encode()


def utf16() -> bytes:
    """A UTF-16 CSV with its byte-order mark (Excel's 'Unicode text')."""
    return f"sequence\n{GOOD}\n{OTHER}\n".encode("utf-16")


def formula_cells() -> bytes:
    """Ids a spreadsheet would run as formulas, and bad rows whose messages echo them."""
    rows = [
        "id,sequence",
        f'=HYPERLINK("http://x"),{GOOD}',
        f"+1+1,{OTHER}",
        f"-2+3,{GOOD}",
        f"@SUM(A1),{OTHER}",
        "=cmd|' /C calc'!A0,ACGTX",
    ]
    return ("\n".join(rows) + "\n").encode()


def polyglot_gif_csv() -> bytes:
    """A valid GIF header and image (1x1) whose trailing bytes are CSV text with good rows."""
    out = io.BytesIO()
    Image.new("L", (1, 1)).save(out, format="GIF")
    return out.getvalue() + f"\nsequence\n{GOOD}\n{OTHER}\n".encode()


def polyglot_zip_csv() -> bytes:
    """CSV rows followed by a ZIP archive: a valid CSV start and a valid ZIP (read from its end)."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("payload.txt", "hello")
    return f"id,sequence\na,{GOOD}\nb,{OTHER}\n".encode() + archive.getvalue()


def unclosed_quote() -> bytes:
    return f'id,sequence\na,{GOOD}\n"b,{OTHER}\nc,{GOOD}\n'.encode()


def header_only_fasta() -> bytes:
    return f">r1\n{GOOD}\n>r2\n>r3\n{OTHER}\n".encode()


def tumour_mixed() -> bytes:
    """Tabular rows: good ones, and bad ones (out of range, not a number, overflow, NaN)."""
    rows = [
        TUMOUR_HEADER,
        "=1+1,5,1,1,1,2,1,3,1,1",
        "b,50,1,1,1,2,1,3,1,1",
        "c,x,1,1,1,2,1,3,1,1",
        "d,1e400,1,1,1,2,1,3,1,1",
        "e,NaN,1,1,1,2,1,3,1,1",
        "f,3,1,1,1,2,1,3,1,1",
    ]
    return ("\n".join(rows) + "\n").encode()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    body = kind + payload
    return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))


def png_header(width: int, height: int, idat: bytes) -> bytes:
    """A greyscale 8-bit PNG of ``width`` x ``height`` with the given IDAT data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def png_bomb_header() -> bytes:
    """A 20000 x 20000 PNG header (400 M pixels) with a few bytes of pixel data: tiny on disk."""
    return png_header(20_000, 20_000, zlib.compress(b"\0" * 20_001 * 4))


SMALL: dict[str, Callable[[], bytes]] = {
    "truncated.fasta.gz": truncated_gzip,
    "zeros-10mb.gz": zeros_bomb,
    "nested-bomb.gz.gz": nested_bomb,
    "no-headers.fasta": fasta_without_headers,
    "nul-bytes.fasta": nul_bytes,
    "binary-nuls.csv": binary_with_nuls,
    "latin1-in-utf8.csv": latin1_in_utf8,
    "bom-crlf.csv": bom_crlf,
    "cr-only.tsv": cr_only,
    "utf16.csv": utf16,
    "formula-cells.csv": formula_cells,
    "polyglot-gif.csv": polyglot_gif_csv,
    "polyglot-zip.csv": polyglot_zip_csv,
    "unclosed-quote.csv": unclosed_quote,
    "header-only.fasta": header_only_fasta,
    "tumour-mixed.csv": tumour_mixed,
    "png-bomb-20000.png": png_bomb_header,
}

# --- big files, generated at test time ------------------------------------------------------


def text_bomb(path: Path, size: int) -> Path:
    """``size`` bytes of valid one-per-line DNA text, gzip-compressed (about 1:200)."""
    line = (OTHER + "\n").encode() * 1000
    with gzip.open(path, "wb", compresslevel=6) as out:
        for _ in range(size // len(line) + 1):
            out.write(line)
    return path


def million_columns(path: Path, columns: int = 1_000_000) -> Path:
    """A CSV whose header has ``columns`` columns (``sequence`` first) and two data rows."""
    header = "sequence," + ",".join(f"c{i}" for i in range(1, columns))
    filler = "," * (columns - 1)
    path.write_text(f"{header}\n{GOOD}{filler}\n{OTHER}{filler}\n")
    return path


def png_bomb_complete(path: Path, side: int = 20_000) -> Path:
    """A complete, valid ``side`` x ``side`` greyscale PNG of zeros (about 400 KB for 20000)."""
    squeeze = zlib.compressobj(9)
    row = b"\0" * (side + 1)  # filter byte + pixels
    parts = [squeeze.compress(row) for _ in range(side)]
    parts.append(squeeze.flush())
    path.write_bytes(png_header(side, side, b"".join(parts)))
    return path


MULTIPART_HEAD = b'--x\r\nContent-Disposition: form-data; name="file"; filename="big.txt"\r\n\r\n'
MULTIPART_TAIL = b"\r\n--x--\r\n"


def endless(total: int, chunk: int = 1024 * 1024) -> Iterator[bytes]:
    """A multipart body (boundary ``x``) whose file part holds ``total`` bytes of DNA text, in
    chunks: a streamed upload. Its length is :func:`endless_length` of ``total``."""
    yield MULTIPART_HEAD
    block = ((OTHER + "\n") * (chunk // 51 + 1)).encode()[:chunk]
    left = total
    while left > 0:
        yield block[:left]
        left -= len(block[:left])
    yield MULTIPART_TAIL


def endless_length(total: int) -> int:
    return len(MULTIPART_HEAD) + total + len(MULTIPART_TAIL)


def main() -> None:
    FOLDER.mkdir(parents=True, exist_ok=True)
    for name, build in SMALL.items():
        (FOLDER / name).write_bytes(build())
        sys.stdout.write(f"{name}: {(FOLDER / name).stat().st_size:,} bytes\n")


if __name__ == "__main__":
    main()
