"""Images: safe decoding of PNG/JPEG/TIFF into the array a model's schema asks for.

Contract:
- :func:`decode_image` takes the file's bytes and an :class:`ImageSchema` and returns ``float32``
  of shape ``(channels, height, width)`` in ``[0, 1]``, or raises
  :class:`~helixserve.errors.InvalidImage` saying what is wrong and how to fix it: empty data, more
  than ``max_bytes`` (checked before decoding), not an image, a format other than the schema's
  (PNG, JPEG, TIFF by default), more than ``max_pixels`` pixels (checked from the header before
  any pixel is decompressed, so decompression bombs cost nothing; Pillow's own hard limit,
  ``2 * Image.MAX_IMAGE_PIXELS`` = 178,956,970 pixels, caps what ``max_pixels`` can allow),
  several frames (multi-page TIFF, animated PNG), a truncated or corrupt file, or pixel values it
  cannot scale honestly.
- Scaling by bit depth: 8-bit images are divided by 255; 16-bit (``I;16``, ``I;16B``, ...) by
  65535; 32-bit integer images (``I``) by 65535 when every value lies in 0..65535, else refused;
  float images (``F``) are used as they are when every value lies in 0..1, else refused.
- Modes: transparency (RGBA, LA, palette with transparency) is composited onto black; CMYK and
  palette images become RGB; ``channels=1`` takes the luma of colour images; ``channels=3``
  repeats a grey image into three channels. Size: when it differs from the schema, the image is
  resized (bilinear, per channel) if ``schema.resize`` is true, else refused with both sizes.
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

DEFAULT_MAX_IMAGE_BYTES = 20 * 1024 * 1024
DEFAULT_MAX_IMAGE_PIXELS = 64 * 1024 * 1024
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N"})
Pixels = npt.NDArray[np.float32]


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
    max_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    field: str = "image",
) -> Pixels:
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
        warnings.simplefilter("ignore", UserWarning)  # Pillow's chatter on corrupt metadata
        # Pillow warns from 89 M pixels: max_pixels decides instead (Pillow still refuses more
        # than 179 M pixels itself, with DecompressionBombError)
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        image = _open(data, schema, max_pixels, field)
        _load(image, field)
    channels = _channels(image, schema, field)
    return np.stack([_resize(c, schema, field) for c in channels])


def _open(data: bytes, schema: ImageSchema, max_pixels: int, field: str) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data), formats=list(schema.formats))
        width, height = image.size
        frames = int(getattr(image, "n_frames", 1))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise InvalidImage(
            f"image is too large to decode safely ({_reason(err)}); this looks like a "
            f"decompression bomb or a huge scan. Downscale it to about {schema.width} x "
            f"{schema.height} pixels.",
            field=field,
        ) from None
    except Exception as err:
        raise InvalidImage(
            f"file is not a readable image in an accepted format ({', '.join(schema.formats)}): "
            f"{_reason(err)}. Export it as PNG, JPEG or TIFF and upload it again.",
            field=field,
        ) from None
    if width * height > max_pixels:
        raise InvalidImage(
            f"image is {width:,} x {height:,} pixels ({width * height:,} pixels), over the limit "
            f"of {max_pixels:,}; this looks like a decompression bomb or a huge scan. Downscale "
            f"it to about {schema.width} x {schema.height} pixels.",
            field=field,
        )
    if frames > 1:
        raise InvalidImage(
            f"image has {frames} frames (a multi-page TIFF or an animation); "
            "upload one single-frame image.",
            field=field,
        )
    return image


def _load(image: Image.Image, field: str) -> None:
    try:
        image.load()
    except Exception as err:
        raise InvalidImage(
            f"image data is truncated or corrupt ({_reason(err)}); upload the complete file.",
            field=field,
        ) from None


def _reason(err: BaseException) -> str:
    if isinstance(err, UnidentifiedImageError):
        return "not a recognised image format"
    text = str(err).strip().rstrip(".")
    return text[:200] if text else type(err).__name__


def _channels(image: Image.Image, schema: ImageSchema, field: str) -> list[Pixels]:
    """The image as float channels in [0, 1], as many as the schema asks for."""
    if image.mode in _SIXTEEN_BIT_MODES or image.mode in ("I", "F"):
        grey = _high_depth(image, field)
        return [grey] * schema.channels
    flat = _flatten_alpha(image)
    converted = flat.convert("L" if schema.channels == 1 else "RGB")
    pixels = np.asarray(converted, dtype=np.float32) / 255.0
    if pixels.ndim == 2:
        return [pixels]
    return [np.ascontiguousarray(pixels[:, :, i]) for i in range(3)]


def _high_depth(image: Image.Image, field: str) -> Pixels:
    values = np.asarray(image)
    if image.mode == "F":
        if not np.isfinite(values).all() or values.min() < 0 or values.max() > 1:
            raise InvalidImage(
                f"floating-point image has values from {values.min():g} to {values.max():g}; "
                "only 0..1 can be used as they are. Rescale it to 0..1, or save it as 8- or "
                "16-bit.",
                field=field,
            )
        return values.astype(np.float32)
    if image.mode == "I" and (values.min() < 0 or values.max() > 65535):
        raise InvalidImage(
            f"32-bit image has values from {values.min():,} to {values.max():,}; only 0..65535 "
            "can be scaled honestly. Save it as a 16-bit image.",
            field=field,
        )
    return (values.astype(np.float32) / 65535.0).astype(np.float32)


def _flatten_alpha(image: Image.Image) -> Image.Image:
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image


def _resize(channel: Pixels, schema: ImageSchema, field: str) -> Pixels:
    height, width = channel.shape
    if (width, height) == (schema.width, schema.height):
        return channel
    if not schema.resize:
        raise InvalidImage(
            f"image is {width} x {height} pixels, but this model needs exactly "
            f"{schema.width} x {schema.height}; resize it before uploading.",
            field=field,
        )
    resized = Image.fromarray(channel).resize(
        (schema.width, schema.height), Image.Resampling.BILINEAR
    )
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)
