"""Images: href resolution, safe decoding, colour conversion, byte-for-byte JPEGs, size limits, pHash."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from hostile import cmyk_tiff_bytes, image_bytes, jpeg_bytes, png_bomb_bytes, truncated_jpeg_bytes
from PIL import Image, ImageFile
from scipy.fft import dct

from workbench.extract.images import ImageRejected, ImageRules, image_index, phash, prepare_image, resolve_image


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_resolve_prefers_jpg_over_gif_thumbnail_and_handles_extensions():
    index = image_index(["P/pone.0000133.g001.gif", "P/pone.0000133.g001.jpg", "P/fig2.PNG", "P/fig3.jpg", "P/x.pdf"])
    assert resolve_image("pone.0000133.g001", index) == "P/pone.0000133.g001.jpg"
    assert resolve_image("fig2", index) == "P/fig2.PNG"
    assert resolve_image("fig2.png", index) == "P/fig2.PNG"
    assert resolve_image("fig3.tif", index) == "P/fig3.jpg"  # PMC converted the TIFF the XML names
    assert resolve_image("images/fig3", index) == "P/fig3.jpg"
    assert resolve_image("x", index) is None
    assert resolve_image("", index) is None
    assert resolve_image("pone.0000133.g001.gif", index) == "P/pone.0000133.g001.gif"


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_valid_rgb_and_grey_jpeg_are_stored_byte_for_byte(mode):
    data = jpeg_bytes((50, 40), mode=mode)
    stored = prepare_image(data)
    assert stored.jpeg == data
    assert (stored.width, stored.height, stored.source_format, stored.reencoded) == (50, 40, "JPEG", False)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert len(stored.phash) == 16 and int(stored.phash, 16) >= 0


def test_cmyk_jpeg_and_cmyk_tiff_become_rgb_jpeg():
    for data in (jpeg_bytes((40, 30), mode="CMYK"), cmyk_tiff_bytes((40, 30))):
        stored = prepare_image(data)
        assert stored.reencoded
        image = decoded(stored.jpeg)
        assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (40, 30))
        assert stored.sha256 == hashlib.sha256(stored.jpeg).hexdigest()


def test_alpha_is_composited_on_white():
    rgba = Image.new("RGBA", (30, 30), (255, 0, 0, 0))  # fully transparent red
    stored = prepare_image(image_bytes(rgba, "PNG"), ImageRules(jpeg_quality=100))
    pixel = decoded(stored.jpeg).getpixel((15, 15))
    assert all(channel > 245 for channel in pixel)
    assert stored.source_format == "PNG"


def test_palette_gif_and_16_bit_png_become_rgb():
    palette = Image.new("P", (32, 24))
    palette.putpalette([0, 0, 255] * 256)
    assert decoded(prepare_image(image_bytes(palette, "GIF")).jpeg).mode == "RGB"
    ramp = np.tile(np.linspace(1000, 4000, 64, dtype=np.uint16), (32, 1))
    sixteen = Image.fromarray(ramp)
    assert sixteen.mode.startswith("I;16")
    image = decoded(prepare_image(image_bytes(sixteen, "PNG")).jpeg)
    assert image.mode == "RGB"
    grey = np.asarray(image.convert("L"), dtype=int)
    assert grey[:, 0].mean() < 10 and grey[:, -1].mean() > 245  # contrast-stretched, not clipped to white


def test_sides_of_20_px_are_dropped_21_kept():
    with pytest.raises(ImageRejected) as small:
        prepare_image(jpeg_bytes((20, 200)))
    assert small.value.reason == "too_small"
    assert prepare_image(jpeg_bytes((21, 21))).width == 21


def test_decompression_bomb_rejected_before_decoding():
    with pytest.raises(ImageRejected) as bomb:
        prepare_image(png_bomb_bytes())
    assert bomb.value.reason == "decompression_bomb"
    with pytest.raises(ImageRejected) as limited:
        prepare_image(jpeg_bytes((100, 100)), ImageRules(max_pixels=9_999))
    assert limited.value.reason == "decompression_bomb"


def test_truncated_jpeg_is_rejected_and_the_global_guard_stays_off():
    with pytest.raises(ImageRejected) as truncated:
        prepare_image(truncated_jpeg_bytes())
    assert truncated.value.reason == "truncated_image"
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


@pytest.mark.parametrize("data", [b"", b"not an image", b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\n"])
def test_garbage_and_ghostscript_formats_are_undecodable(data):
    with pytest.raises(ImageRejected) as rejected:
        prepare_image(data)
    assert rejected.value.reason == "undecodable_image"


def _reference_phash(image: Image.Image) -> str:
    """imagehash.phash as published: scipy DCT on a 32x32 Lanczos greyscale, 8x8 corner > median."""
    pixels = np.asarray(image.convert("L").resize((32, 32), Image.Resampling.LANCZOS), dtype=np.float64)
    low = dct(dct(pixels, axis=0), axis=1)[:8, :8]
    bits = "".join("1" if bit else "0" for bit in (low > np.median(low)).flatten())
    return f"{int(bits, 2):016x}"


def test_phash_matches_the_scipy_reference_and_is_stable_under_resizing():
    rng = np.random.default_rng(5)
    base = Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).resize((256, 200))
    assert phash(base) == _reference_phash(base)
    smaller = base.resize((128, 100))
    distance = bin(int(phash(base), 16) ^ int(phash(smaller), 16)).count("1")
    assert distance <= 4
    other = Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).resize((256, 200))
    assert bin(int(phash(base), 16) ^ int(phash(other), 16)).count("1") > 10
