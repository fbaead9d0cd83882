"""Image datasets in one zip: PNG/JPEG/TIFF files plus a labels table that names each image.

Contract:
- :func:`is_zip` says whether a file is a zip archive, by its first bytes (``PK\\x03\\x04``).
- :func:`open_image_zip` opens a zip and finds its labels table: the one ``.csv`` / ``.tsv``
  member (``__MACOSX/`` and hidden files ignored); with several, the one named ``labels``,
  ``manifest`` or ``metadata``, else the shallowest; none, or a tie, raises
  :class:`~helixserve.errors.InvalidFile` listing them. The table is read by
  :func:`~helixserve.inputs.table.read_table` (same quoting, per-row errors, id columns).
- The image column is ``image_col`` when given (case-insensitive), else the first of
  :data:`IMAGE_COLUMNS` in the header, else the first column whose first value ends with an image
  extension (:data:`IMAGE_EXTENSIONS`); none raises :class:`~helixserve.errors.InvalidFile`.
- :attr:`ImageZip.rows` yields, lazily and in table order, a
  :class:`~helixserve.inputs.table.TableRow` (its cells as text, the image path unchanged) for
  each row whose image exists in the zip and decodes with
  :func:`~helixserve.inputs.images.decode_image` (size, bomb, frame and corruption checks), or a
  located :class:`~helixserve.inputs.records.BadRecord` saying what is wrong with the row or its
  image. An image path is looked up relative to the labels table's folder, then to the zip's
  root; ``\\`` is read as ``/``. One image is held in memory at a time (at most
  ``max_image_bytes``).
- :func:`labels_table` names a zip's labels table and :func:`read_image` reads the image a row
  names, by the same rules (for callers that extract the images of rows they kept).
- ``max_decompressed`` caps the bytes read from the archive (the table plus every image, by the
  sizes the zip declares, checked before reading): past it,
  :class:`~helixserve.errors.FileTooLarge` stops the file (a zip bomb costs nothing).
"""

from __future__ import annotations

import posixpath
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from helixserve.errors import FileTooLarge, InvalidFile, InvalidImage
from helixserve.inputs.images import (
    DEFAULT_MAX_IMAGE_BYTES,
    DEFAULT_MAX_IMAGE_PIXELS,
    ImageSchema,
    decode_image,
)
from helixserve.inputs.records import BadRecord, bad_record
from helixserve.inputs.table import ID_COLUMNS, ColumnSpec, TableRow, read_table
from helixserve.inputs.textio import check_head, iter_lines, opened

ZIP_MAGIC = b"PK\x03\x04"
IMAGE_COLUMNS = ("image", "image_path", "path", "file", "filename", "file_name")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
LABEL_NAMES = ("labels", "manifest", "metadata")
_ANY_SIZE = ImageSchema(width=1, height=1)  # decode_image checks; the 1x1 result is dropped


def is_zip(path: Path) -> bool:
    """Whether ``path`` is a zip archive (by its magic bytes)."""
    with path.open("rb") as handle:
        return handle.read(len(ZIP_MAGIC)) == ZIP_MAGIC


@dataclass
class ImageZip:
    """An opened image zip: its labels table, image column and rows (see the module contract)."""

    labels: str
    header: list[str] = field(default_factory=list)
    image_column: str = ""
    rows: Iterator[TableRow | BadRecord] = field(default_factory=lambda: iter(()))


@dataclass
class _Budget:
    """Bytes the archive may still inflate to."""

    left: int | None

    def spend(self, size: int, what: str) -> None:
        if self.left is None:
            return
        self.left -= size
        if self.left < 0:
            raise FileTooLarge(
                f"the zip inflates to more bytes than the limit for one file when {what} is "
                "read (HELIXSERVE_MAX_DECOMPRESSED_BYTES); it may be a zip bomb. Split it "
                "into smaller archives."
            )


@contextmanager
def open_image_zip(
    path: Path,
    *,
    image_col: str | None = None,
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    max_decompressed: int | None = None,
) -> Iterator[ImageZip]:
    """Open an image zip; see the module contract."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise InvalidFile(
            f"not a readable zip archive ({err}); check that it is complete, or zip it again."
        ) from None
    with archive:
        labels = _labels_member(archive)
        budget = _Budget(max_decompressed)
        budget.spend(labels.file_size, labels.filename)
        found = ImageZip(labels.filename)
        limits = (max_image_bytes, max_image_pixels)
        with archive.open(labels) as raw, opened(raw) as stream:
            check_head(stream)
            delimiter = "\t" if labels.filename.lower().endswith(".tsv") else ","
            table = read_table(iter_lines(stream), delimiter, _header_into(found, image_col))
            found.rows = _checked(archive, found, table, budget, limits)
            yield found


def labels_table(archive: zipfile.ZipFile) -> str:
    """The member name of the zip's labels table (see the module contract)."""
    return _labels_member(archive).filename


def read_image(archive: zipfile.ZipFile, labels: str, value: str) -> tuple[str, bytes]:
    """The member name and bytes of the image that a row of the labels table ``labels`` names
    (``value``: relative to the table's folder, then to the zip's root);
    :class:`~helixserve.errors.InvalidImage` if the zip has no such image."""
    info = _member(archive, posixpath.dirname(labels), value)
    return info.filename, archive.read(info)


def _labels_member(archive: zipfile.ZipFile) -> zipfile.ZipInfo:
    tables = [
        info
        for info in archive.infolist()
        if not info.is_dir()
        and info.filename.lower().endswith((".csv", ".tsv"))
        and not info.filename.startswith("__MACOSX/")
        and not posixpath.basename(info.filename).startswith(".")
    ]
    if not tables:
        raise InvalidFile(
            "the zip holds no labels table: add a labels.csv with one row per image (a column "
            "'image' with the image's path in the zip, and the label columns)."
        )
    named = [t for t in tables if _stem(t.filename) in LABEL_NAMES]
    candidates = named or tables
    depth = min(t.filename.count("/") for t in candidates)
    shallowest = [t for t in candidates if t.filename.count("/") == depth]
    if len(shallowest) > 1:
        names = ", ".join(t.filename for t in shallowest[:10])
        raise InvalidFile(
            f"the zip holds several tables ({names}) and none is named labels.csv; keep one "
            "labels table in the zip, or name the one that lists the images labels.csv."
        )
    return shallowest[0]


def _stem(name: str) -> str:
    return posixpath.basename(name).lower().rsplit(".", 1)[0]


def _header_into(found: ImageZip, image_col: str | None) -> Callable[[list[str]], ColumnSpec]:
    def columns(header: list[str]) -> ColumnSpec:
        found.header = header
        lowered = {name.strip().lower(): name for name in header}
        if image_col is not None and image_col.strip().lower() not in lowered:
            raise InvalidFile(
                f"image column '{image_col}' is not in {found.labels}; its header has: "
                f"{', '.join(header)[:300]}."
            )
        wanted = [image_col.strip().lower()] if image_col else list(IMAGE_COLUMNS)
        found.image_column = next((lowered[c] for c in wanted if c in lowered), "")
        ident = next((lowered[c] for c in ID_COLUMNS if c in lowered), None)
        return ColumnSpec(id=ident)

    return columns


def _checked(
    archive: zipfile.ZipFile,
    found: ImageZip,
    table: Iterator[TableRow | BadRecord],
    budget: _Budget,
    limits: tuple[int, int],
) -> Iterator[TableRow | BadRecord]:
    folder = posixpath.dirname(found.labels)
    for row in table:
        if isinstance(row, BadRecord):
            yield row
            continue
        if not found.image_column:
            found.image_column = _guess_image_column(found, row)
        ident = row.values.get(row.spec.id) if row.spec.id else None
        try:
            _check_image(archive, folder, row.values[found.image_column], budget, limits)
        except InvalidImage as err:
            yield bad_record(err, row.index, row.line, ident or None)
        else:
            yield row


def _guess_image_column(found: ImageZip, row: TableRow) -> str:
    for name in found.header:
        if row.values[name].strip().lower().endswith(IMAGE_EXTENSIONS):
            return name
    raise InvalidFile(
        f"no image column in {found.labels}: no column is named "
        f"{' / '.join(IMAGE_COLUMNS[:3])}, and no value of the first row ends with "
        f"{', '.join(IMAGE_EXTENSIONS)}. Name the column of image paths 'image'."
    )


def _check_image(
    archive: zipfile.ZipFile, folder: str, value: str, budget: _Budget, limits: tuple[int, int]
) -> None:
    max_bytes, max_pixels = limits
    info = _member(archive, folder, value)
    if info.file_size > max_bytes:
        raise InvalidImage(
            f"image '{value}' is {info.file_size:,} bytes, over the limit of {max_bytes:,} "
            "bytes; downscale or compress it.",
            field="image",
        )
    budget.spend(info.file_size, f"image '{value}'")
    try:
        data = archive.read(info)
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise InvalidImage(
            f"image '{value}' cannot be read from the zip ({err}); zip it again.", field="image"
        ) from None
    try:
        decode_image(data, _ANY_SIZE, max_bytes=max_bytes, max_pixels=max_pixels, field="image")
    except InvalidImage as err:
        raise InvalidImage(f"image '{value[:200]}': {err.problem}", field="image") from None


def _member(archive: zipfile.ZipFile, folder: str, value: str) -> zipfile.ZipInfo:
    relative = value.strip().replace("\\", "/").removeprefix("./")
    if not relative:
        raise InvalidImage("the image path is empty; name the image file.", field="image")
    for candidate in (posixpath.join(folder, relative), relative):
        try:
            return archive.getinfo(posixpath.normpath(candidate))
        except KeyError:
            continue
    raise InvalidImage(
        f"image '{value[:200]}' is not in the zip; check the path (relative to the labels "
        "table's folder) and the file name's case.",
        field="image",
    )
