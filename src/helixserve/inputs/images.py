"""Images: safe decoding of PNG/JPEG/TIFF into the array a model's schema asks for.

Contract:
- :func:`decode_image` takes the file's bytes and an :class:`ImageSchema` and returns ``float32``
  of shape ``(channels, height, width)`` scaled to ``[0, 1]`` (8-bit images divided by 255, 16-bit
  by 65535), or raises :class:`~helixserve.errors.InvalidImage` saying what is wrong and how to fix:
  empty data, more than ``max_bytes`` (checked before decoding), not an image, a format other than
  the schema's (PNG, JPEG, TIFF by default), more than ``max_pixels`` pixels (checked from the
  header before any pixel is decompressed, so decompression bombs cost nothing), several frames
  (multi-page TIFF, animated PNG), or a truncated/corrupt file.
- Mode conversion: ``channels=1`` gives greyscale (``L``, 16-bit kept as 16-bit), ``channels=3``
  gives ``RGB``. Size: when it differs from the schema, the image is resized (bilinear) if
  ``schema.resize`` is true, else refused with both sizes in the message.
"""

from __future__ import annotations

import io
import warnings
from typing import Literal

import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field

from helixserve.errors import InvalidImage

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
DEFAULT_MAX_PIXELS = 64 * 1024 * 1024
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N"})


class ImageSchema(BaseModel):
    """What an image model accepts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["image"] = "image"
    width: int = Field(ge=1)
    height: int = Field(ge=1)
    channels: Literal[1, 3] = 1
    resize: bool = True
    formats: tuple[str, ...] = ("PNG", "JPEG", "TIFF")


def decode_image(
    data: bytes,
    schema: ImageSchema,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    field: str = "image",
) -> npt.NDArray[np.float32]:
    """Decode, check and convert an image; see the module contract."""
    if not data:
        raise InvalidImage(
            "image is empty (0 bytes); upload a PNG, JPEG or TIFF file.", field=field
        )
    if len(data) > max_bytes:
        raise InvalidImage(
            f"image is {len(data):,} bytes, over the limit of {max_bytes:,} bytes; "
            "upload a smaller or compressed image.",
            field=field,
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        image = _open(data, schema, max_pixels, field)
        image = _load(image, field)
    return _to_array(_resize(_convert(image, schema), schema, field), schema)


def _open(data: bytes, schema: ImageSchema, max_pixels: int, field: str) -> Image.Image:
    allowed = ", ".join(schema.formats)
    try:
        image = Image.open(io.BytesIO(data), formats=list(schema.formats))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise InvalidImage(
            f"image is too large to decode safely ({_reason(err)}); this looks like a "
            f"decompression bomb or a huge scan. Downscale it to about {schema.width} x "
            f"{schema.height} pixels.",
            field=field,
        ) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise InvalidImage(
            f"file is not a readable image in an accepted format ({allowed}): {_reason(err)}. "
            "Export it as PNG, JPEG or TIFF and upload it again.",
            field=field,
        ) from None
    width, height = image.size
    if width * height > max_pixels:
        raise InvalidImage(
            f"image is {width:,} x {height:,} pixels ({width * height:,} pixels), over the limit "
            f"of {max_pixels:,}; this looks like a decompression bomb or a huge scan. Downscale "
            f"it to about {schema.width} x {schema.height} pixels.",
            field=field,
        )
    frames = int(getattr(image, "n_frames", 1))
    if frames > 1:
        raise InvalidImage(
            f"image has {frames} frames (a multi-page TIFF or an animation); "
            "upload one single-frame image.",
            field=field,
        )
    return image


def _load(image: Image.Image, field: str) -> Image.Image:
    try:
        image.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombWarning) as err:
        raise InvalidImage(
            f"image data is truncated or corrupt ({_reason(err)}); upload the complete file.",
            field=field,
        ) from None
    return image


def _reason(err: BaseException) -> str:
    text = str(err).strip().rstrip(".")
    return text[:200] if text else type(err).__name__


def _convert(image: Image.Image, schema: ImageSchema) -> Image.Image:
    if schema.channels == 1:
        if image.mode in _SIXTEEN_BIT_MODES:
            return image.convert("I;16") if image.mode != "I;16" else image
        return image.convert("L")
    return image.convert("RGB")


def _resize(image: Image.Image, schema: ImageSchema, field: str) -> Image.Image:
    wanted = (schema.width, schema.height)
    if image.size == wanted:
        return image
    if not schema.resize:
        raise InvalidImage(
            f"image is {image.size[0]} x {image.size[1]} pixels, but this model needs exactly "
            f"{schema.width} x {schema.height}; resize it before uploading.",
            field=field,
        )
    return image.resize(wanted, Image.Resampling.BILINEAR)


def _to_array(image: Image.Image, schema: ImageSchema) -> npt.NDArray[np.float32]:
    if image.mode in _SIXTEEN_BIT_MODES:
        pixels = np.asarray(image, dtype=np.uint16).astype(np.float32) / 65535.0
    else:
        pixels = np.asarray(image, dtype=np.uint8).astype(np.float32) / 255.0
    pixels = pixels[np.newaxis, :, :] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
    return np.ascontiguousarray(pixels.reshape(schema.channels, schema.height, schema.width))
