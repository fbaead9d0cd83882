"""Image decoding: formats, modes, sizes, and every refusal with its message."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from helixserve.errors import InvalidImage
from helixserve.inputs.images import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    ImageSchema,
    decode_image,
)

GREY = ImageSchema(width=8, height=6, channels=1, resize=False)


def encode(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def gradient(width: int = 8, height: int = 6) -> Image.Image:
    pixels = (np.arange(width * height, dtype=np.uint8) * 5).reshape(height, width)
    return Image.fromarray(pixels, mode="L")


def refusal(
    data: bytes,
    schema: ImageSchema = GREY,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> str:
    with pytest.raises(InvalidImage) as info:
        decode_image(data, schema, max_bytes=max_bytes, max_pixels=max_pixels)
    assert info.value.field == "image"
    return str(info.value)


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_lossless_greyscale_round_trip(fmt: str) -> None:
    image = gradient()
    x = decode_image(encode(image, fmt), GREY)
    assert x.shape == (1, 6, 8)
    assert x.dtype == np.float32
    np.testing.assert_allclose(x[0], np.asarray(image, dtype=np.float32) / 255.0)


def test_jpeg_decodes_close_to_the_original() -> None:
    image = gradient()
    x = decode_image(encode(image, "JPEG", quality=95), GREY)
    assert np.abs(x[0] - np.asarray(image) / 255.0).max() < 0.05


def test_sixteen_bit_tiff_is_scaled_by_65535() -> None:
    pixels = np.array([[0, 65535], [32768, 1000]], dtype=np.uint16)
    data = encode(Image.fromarray(pixels), "TIFF")
    x = decode_image(data, ImageSchema(width=2, height=2, channels=1))
    np.testing.assert_allclose(x[0], pixels / 65535.0, rtol=1e-6)


def test_rgb_to_grey_and_grey_to_rgb() -> None:
    rgb = Image.new("RGB", (8, 6), (255, 0, 0))
    grey = decode_image(encode(rgb, "PNG"), GREY)
    assert grey.shape == (1, 6, 8)
    assert grey[0, 0, 0] == pytest.approx(76 / 255)  # ITU-R 601-2 luma of pure red
    schema = ImageSchema(width=8, height=6, channels=3)
    colour = decode_image(encode(gradient(), "PNG"), schema)
    assert colour.shape == (3, 6, 8)
    np.testing.assert_array_equal(colour[0], colour[2])


def test_resize_when_allowed() -> None:
    schema = ImageSchema(width=4, height=3, channels=1, resize=True)
    assert decode_image(encode(gradient(16, 12), "PNG"), schema).shape == (1, 3, 4)


def test_wrong_size_refused_when_resize_is_off() -> None:
    assert refusal(encode(gradient(16, 12), "PNG")) == (
        "image is 16 x 12 pixels, but this model needs exactly 8 x 6; resize it before uploading."
    )


def test_empty_and_oversized() -> None:
    assert refusal(b"") == "image is empty (0 bytes); upload a PNG, JPEG or TIFF file."
    data = encode(gradient(), "PNG")
    assert refusal(data, max_bytes=10) == (
        f"image is {len(data):,} bytes, over the limit of 10 bytes; upload a smaller or "
        "compressed image."
    )


def test_not_an_image() -> None:
    message = refusal(b"id,sequence\na,ACGT\n")
    assert message.startswith(
        "file is not a readable image in an accepted format (PNG, JPEG, TIFF):"
    )
    assert message.endswith("Export it as PNG, JPEG or TIFF and upload it again.")


def test_format_outside_the_schema_is_refused() -> None:
    assert refusal(encode(gradient(), "BMP")).startswith(
        "file is not a readable image in an accepted format (PNG, JPEG, TIFF):"
    )


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` greyscale pixels, with one tiny data chunk."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


def test_decompression_bomb_refused_from_its_header() -> None:
    bomb = png_header_only(9_000, 9_000)
    assert len(bomb) < 200
    assert refusal(bomb) == (
        "image is 9,000 x 9,000 pixels (81,000,000 pixels), over the limit of 67,108,864; "
        "this looks like a decompression bomb or a huge scan. Downscale it to about 8 x 6 pixels."
    )


def test_bomb_beyond_pillows_own_limit() -> None:
    message = refusal(png_header_only(100_000, 100_000))
    assert message.startswith(
        "image is too large to decode safely (Image size (10000000000 pixels)"
    )
    assert message.endswith("Downscale it to about 8 x 6 pixels.")


def test_pixel_limit_is_configurable() -> None:
    assert refusal(encode(gradient(), "PNG"), max_pixels=40).startswith(
        "image is 8 x 6 pixels (48 pixels), over the limit of 40;"
    )


def test_truncated_png() -> None:
    data = encode(
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), np.uint8)), "PNG"
    )
    message = refusal(data[: len(data) // 2], ImageSchema(width=64, height=64))
    assert message.startswith("image data is truncated or corrupt (")
    assert message.endswith("); upload the complete file.")


def test_multi_page_tiff() -> None:
    buf = io.BytesIO()
    gradient().save(buf, format="TIFF", save_all=True, append_images=[gradient()])
    assert refusal(buf.getvalue()) == (
        "image has 2 frames (a multi-page TIFF or an animation); upload one single-frame image."
    )
