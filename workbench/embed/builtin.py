"""The `builtin` embedder: classic image descriptors that need no weights, so demos and tests run offline.

`describe(image)` concatenates six blocks, each computed on the RGB image and brought to unit L2 norm (so every
block weighs the same whatever its length: a fixed, data-independent standardisation), then scales them by
`BLOCK_WEIGHTS` and L2-normalises the whole vector (cosine similarity = dot product):

| block | dims | what it tells apart |
|---|---|---|
| `hsv` | 72 | joint hue (8) x saturation (3) x value (3) histogram, square-rooted (Hellinger): stains, fundus, greys |
| `grey` | 16 | grey-level histogram, square-rooted: dark radiology backgrounds vs white chart backgrounds |
| `stats` | 8 | white / black pixel fractions, mean and spread of grey and saturation, edge density, aspect ratio |
| `hog` | 153 | gradient-orientation histograms (9 unsigned bins), 4x4 grid + whole image (HOG-like): bars, lines |
| `dct` | 64 | log magnitudes of the 8x8 lowest 2-D DCT frequencies of a 32x32 grey thumbnail: coarse texture |
| `layout` | 64 | an 8x8 grey thumbnail, mean removed: where the bright and dark masses are |

377 dimensions in all. Deterministic (no randomness, no fitted statistics), so resumed and incremental runs agree.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

NAME = "descriptors-v1"
SIDE = 128  # the working size of the descriptors
BLOCKS = (("hsv", 72), ("grey", 16), ("stats", 8), ("hog", 153), ("dct", 64), ("layout", 64))
BLOCK_WEIGHTS = {"hsv": 1.0, "grey": 0.8, "stats": 1.0, "hog": 1.2, "dct": 0.8, "layout": 0.6}
DIM = sum(size for _, size in BLOCKS)
_DCT = np.cos(np.pi * np.arange(8)[:, None] * (2 * np.arange(32)[None, :] + 1) / 64) * np.sqrt(2 / 32)
_DCT[0] /= np.sqrt(2)  # orthonormal DCT-II rows 0..7 of a 32-point transform
PREPROCESSING = {"size": SIDE, "resize": "bilinear, aspect ignored", "blocks": dict(BLOCKS), "weights": BLOCK_WEIGHTS}


def _unit(values: np.ndarray) -> np.ndarray:
    values = values.astype(np.float32).ravel()
    norm = float(np.linalg.norm(values))
    return values / norm if norm > 1e-12 else values


def _hog(grey: np.ndarray, cells: int = 4, bins: int = 9) -> np.ndarray:
    gy, gx = np.gradient(grey)
    magnitude = np.hypot(gx, gy)
    orientation = np.mod(np.arctan2(gy, gx), np.pi)  # unsigned: 0..pi
    index = np.minimum((orientation / np.pi * bins).astype(np.int64), bins - 1)
    step = grey.shape[0] // cells
    cell_of = (np.arange(grey.shape[0]) // step).clip(max=cells - 1)
    cell = cell_of[:, None] * cells + cell_of[None, :]
    hist = np.bincount((cell * bins + index).ravel(), magnitude.ravel(), cells * cells * bins).reshape(-1, bins)
    hist = hist / (hist.sum(axis=1, keepdims=True) + 1e-6)  # per-cell orientation distribution
    overall = np.bincount(index.ravel(), magnitude.ravel(), bins)
    overall = overall / (overall.sum() + 1e-6)
    return np.sqrt(np.concatenate([hist.ravel(), overall]))


def describe(image: Image.Image) -> np.ndarray:
    """The 377-d float32 descriptor of an image (unit L2 norm)."""
    width, height = image.size
    rgb = image.convert("RGB").resize((SIDE, SIDE), Image.Resampling.BILINEAR)
    hsv = np.asarray(rgb.convert("HSV"), dtype=np.int64)
    grey = np.asarray(rgb.convert("L"), dtype=np.float32) / 255.0
    h, s, v = hsv[..., 0] * 8 // 256, hsv[..., 1] * 3 // 256, hsv[..., 2] * 3 // 256
    hsv_hist = np.bincount((h * 9 + s * 3 + v).ravel(), minlength=72) / grey.size
    grey_hist = np.bincount((grey * 15.999).astype(np.int64).ravel(), minlength=16) / grey.size
    gy, gx = np.gradient(grey)
    saturation = hsv[..., 1] / 255.0
    stats = np.array(
        [
            (grey > 0.94).mean(),
            (grey < 0.06).mean(),
            grey.mean(),
            grey.std() * 2,
            saturation.mean(),
            saturation.std() * 2,
            (np.hypot(gx, gy) > 0.1).mean(),
            0.5 + np.log(max(width, 1) / max(height, 1)) / 4,
        ]
    )
    small = np.asarray(rgb.convert("L").resize((32, 32), Image.Resampling.BOX), dtype=np.float32) / 255.0
    dct = np.log1p(np.abs(_DCT @ small @ _DCT.T))
    layout = np.asarray(rgb.convert("L").resize((8, 8), Image.Resampling.BOX), dtype=np.float32) / 255.0
    blocks = {
        "hsv": np.sqrt(hsv_hist),
        "grey": np.sqrt(grey_hist),
        "stats": stats,
        "hog": _hog(grey),
        "dct": dct,
        "layout": layout - layout.mean(),
    }
    return _unit(np.concatenate([_unit(blocks[name]) * BLOCK_WEIGHTS[name] for name, _ in BLOCKS]))
