"""Figure images: find the package member a `<graphic>` names, decode it safely, store it as a JPEG.

A valid RGB or greyscale JPEG within the pixel limit is stored byte for byte; anything else (PNG, TIFF, GIF,
CMYK or 16-bit or alpha images) is converted to RGB and re-encoded as JPEG. Pillow's own truncated-image
guard stays on (`ImageFile.LOAD_TRUNCATED_IMAGES` is never touched) and the pixel limit is checked from the
header before any pixel is decoded, so decompression bombs are rejected cheaply.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from PIL import Image

IMAGE_PREFERENCE = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".gif")  # PMC's .gif beside a .jpg is a thumbnail
DECODABLE_FORMATS = ("JPEG", "PNG", "TIFF", "GIF", "BMP", "WEBP")  # never EPS/PDF (Ghostscript) or exotic plugins
_HIGH_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
_PHASH_SIZE = 32
_PHASH_LOW = 8
# Rows 0..7 of the 32-point DCT-II basis: low = B @ pixels @ B.T is the 8x8 low-frequency corner of the 2-D DCT.
_DCT_BASIS = np.cos(np.pi * np.outer(np.arange(_PHASH_LOW), 2 * np.arange(_PHASH_SIZE) + 1) / (2 * _PHASH_SIZE))


@dataclass(frozen=True)
class ImageRules:
    """What an image must satisfy: at most `max_pixels`, both sides >= `min_side`; JPEG quality for re-encoding."""

    max_pixels: int = 89_478_485  # Pillow's default decompression-bomb threshold
    min_side: int = 21
    jpeg_quality: int = 95


@dataclass(frozen=True)
class StoredImage:
    """The JPEG bytes to store with their measurements."""

    jpeg: bytes
    width: int
    height: int
    source_format: str
    reencoded: bool
    sha256: str
    phash: str


class ImageRejected(Exception):
    """An image that does not become a pair (`reason`: decompression_bomb | truncated_image | too_small | ...)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def image_index(names: Iterable[str]) -> dict[str, str]:
    """Lower-cased base name -> member name, for every image member (first one wins on a clash)."""
    index: dict[str, str] = {}
    for name in names:
        base = name.rsplit("/", 1)[-1].lower()
        if base.endswith(IMAGE_PREFERENCE):
            index.setdefault(base, name)
    return index


def resolve_image(href: str, index: Mapping[str, str]) -> str | None:
    """The member a `xlink:href` names: exact name first, then the name plus .jpg/.jpeg/.png/.tif/.tiff/.gif.

    PLoS/BMC hrefs carry no extension ("pone.0000133.g001"); an href naming a .tif that PMC converted is also
    matched through its stem ("fig1.tif" -> "fig1.jpg").
    """
    base = href.replace("\\", "/").rsplit("/", 1)[-1].strip().lower()
    if not base:
        return None
    stems = [base]
    if base.endswith(IMAGE_PREFERENCE):
        if base in index:
            return index[base]
        stems.append(base.rsplit(".", 1)[0])
    for stem in stems:
        for suffix in IMAGE_PREFERENCE:
            member = index.get(stem + suffix)
            if member:
                return member
    return None


def prepare_image(data: bytes, rules: ImageRules = ImageRules()) -> StoredImage:
    """Decode `data` safely and return what to store; raise `ImageRejected` with a reason otherwise."""
    try:
        with Image.open(io.BytesIO(data), formats=DECODABLE_FORMATS) as image:
            width, height = image.size
            if width * height > rules.max_pixels:
                raise ImageRejected("decompression_bomb", f"{width}x{height} pixels > {rules.max_pixels}")
            if min(width, height) < rules.min_side:
                raise ImageRejected("too_small", f"{width}x{height}, a side under {rules.min_side} px")
            source_format = image.format or "unknown"
            if source_format == "JPEG" and image.mode in ("RGB", "L"):
                # Stored byte for byte: decode every scan (a truncated file still fails) but only at the
                # DCT scale the perceptual hash needs, which is several times cheaper than full size.
                image.draft(image.mode, (_PHASH_SIZE * 4, _PHASH_SIZE * 4))
                image.load()
                return _stored(data, image, (width, height), source_format, reencoded=False)
            image.load()
            rgb = to_rgb(image)
            buffer = io.BytesIO()
            rgb.save(buffer, "JPEG", quality=rules.jpeg_quality)
            return _stored(buffer.getvalue(), rgb, rgb.size, source_format, reencoded=True)
    except ImageRejected:
        raise
    except Image.DecompressionBombError as error:
        raise ImageRejected("decompression_bomb", str(error)) from error
    except Image.UnidentifiedImageError as error:
        raise ImageRejected("undecodable_image", str(error)) from error
    except (OSError, EOFError) as error:
        reason = "truncated_image" if isinstance(error, EOFError) or "truncated" in str(error) else "undecodable_image"
        raise ImageRejected(reason, f"{type(error).__name__}: {error}") from error
    except Exception as error:  # Pillow plugins raise many types (SyntaxError, struct.error, ...) on bad input
        raise ImageRejected("undecodable_image", f"{type(error).__name__}: {error}") from error


def _stored(
    jpeg: bytes, image: Image.Image, size: tuple[int, int], source_format: str, *, reencoded: bool
) -> StoredImage:
    return StoredImage(
        jpeg=jpeg,
        width=size[0],
        height=size[1],
        source_format=source_format,
        reencoded=reencoded,
        sha256=hashlib.sha256(jpeg).hexdigest(),
        phash=phash(image),
    )


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB: alpha composited on white, palette/CMYK/greyscale converted, 16-bit/float contrast-stretched."""
    if image.mode in _HIGH_DEPTH_MODES:
        pixels = np.asarray(image, dtype=np.float64)
        low, high = float(pixels.min()), float(pixels.max())
        scaled = (pixels - low) * (255.0 / (high - low)) if high > low else np.zeros_like(pixels)
        return Image.fromarray(scaled.round().astype(np.uint8), "L").convert("RGB")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB") if image.mode != "RGB" else image


def phash(image: Image.Image) -> str:
    """64-bit DCT perceptual hash as 16 hex digits (the `imagehash.phash` algorithm, in numpy).

    Greyscale, resized to 32x32 with Lanczos (after an integer box reduction of large images), 2-D DCT-II,
    the 8x8 lowest frequencies compared to their median,
    bits packed row by row, most significant first.
    """
    grey = image.convert("L") if image.mode != "L" else image
    # reducing_gap: box-reduce large images by an integer factor first, then Lanczos (same result to the eye).
    small = grey.resize((_PHASH_SIZE, _PHASH_SIZE), Image.Resampling.LANCZOS, reducing_gap=3.0)
    pixels = np.asarray(small, dtype=np.float64)
    low = _DCT_BASIS @ pixels @ _DCT_BASIS.T
    bits = (low > np.median(low)).flatten()
    return np.packbits(bits).tobytes().hex()
