"""Image decoding: formats, modes, sizes, and every refusal with its message."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helixserve.errors import InvalidImage
from helixserve.inputs.images import (
    DEFAULT_MAX_IMAGE_BYTES,
    DEFAULT_MAX_IMAGE_PIXELS,
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
    max_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
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


# --- bit depths and modes (found in review) -------------------------------------------------------


def test_big_endian_sixteen_bit_tiff() -> None:
    pixels = np.array([[1000, 65535], [0, 40000]], dtype=np.uint16)
    image = Image.frombytes("I;16B", (2, 2), pixels.astype(">u2").tobytes())
    x = decode_image(encode(image, "TIFF"), ImageSchema(width=2, height=2))
    np.testing.assert_allclose(x[0], pixels / 65535.0, rtol=1e-6)


def test_sixteen_bit_into_three_channels_keeps_the_scale() -> None:
    pixels = np.array([[1000, 65535], [0, 40000]], dtype=np.uint16)
    x = decode_image(
        encode(Image.fromarray(pixels), "TIFF"), ImageSchema(width=2, height=2, channels=3)
    )
    assert x.shape == (3, 2, 2)
    for channel in x:
        np.testing.assert_allclose(channel, pixels / 65535.0, rtol=1e-6)


def test_float_tiff_in_range_is_used_and_out_of_range_refused() -> None:
    inside = np.array([[0.0, 0.5], [0.25, 1.0]], dtype=np.float32)
    x = decode_image(encode(Image.fromarray(inside), "TIFF"), ImageSchema(width=2, height=2))
    np.testing.assert_array_equal(x[0], inside)
    outside = np.array([[0.0, 3.5], [0.25, 1.0]], dtype=np.float32)
    assert refusal(encode(Image.fromarray(outside), "TIFF"), ImageSchema(width=2, height=2)) == (
        "floating-point image has values from 0 to 3.5; only 0..1 can be used as they are. "
        "Rescale it to 0..1, or save it as 8- or 16-bit."
    )


def test_thirty_two_bit_integer_image() -> None:
    ok = np.array([[0, 65535]], dtype=np.int32)
    x = decode_image(encode(Image.fromarray(ok), "TIFF"), ImageSchema(width=2, height=1))
    np.testing.assert_allclose(x[0], [[0.0, 1.0]])
    big = np.array([[0, 70000]], dtype=np.int32)
    assert refusal(encode(Image.fromarray(big), "TIFF"), ImageSchema(width=2, height=1)) == (
        "32-bit image has values from 0 to 70,000; only 0..65535 can be scaled honestly. "
        "Save it as a 16-bit image."
    )


def test_transparency_is_composited_onto_black() -> None:
    rgba = Image.new("RGBA", (8, 6), (255, 255, 255, 0))
    x = decode_image(encode(rgba, "PNG"), GREY)
    assert float(x.max()) == 0.0
    half = Image.new("LA", (8, 6), (200, 128))
    y = decode_image(encode(half, "PNG"), GREY)
    assert y[0, 0, 0] == pytest.approx(200 * 128 / 255 / 255, abs=0.01)


def test_palette_and_cmyk_images() -> None:
    palette = gradient().convert("P")
    assert decode_image(encode(palette, "PNG"), GREY).shape == (1, 6, 8)
    cmyk = Image.new("CMYK", (8, 6), (0, 255, 255, 0))  # red
    x = decode_image(encode(cmyk, "JPEG"), ImageSchema(width=8, height=6, channels=3))
    assert x[0].mean() > 0.9 and x[1].mean() < 0.1


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_corrupt_tiff_directory_is_a_typed_error(files: Path) -> None:
    # Found by fuzzing: Pillow raised TypeError('Missing dimensions') while counting frames.
    data = (files / "hostile" / "tiff_missing_dimensions.tif").read_bytes()
    assert refusal(data) == (
        "file is not a readable image in an accepted format (PNG, JPEG, TIFF): Missing "
        "dimensions. Export it as PNG, JPEG or TIFF and upload it again."
    )


def test_not_an_image_message_has_no_object_address() -> None:
    message = refusal(b"id,sequence\na,ACGT\n")
    assert "not a recognised image format" in message
    assert "0x" not in message
