"""Embed a task's images and texts with a loaded model; images that fail to decode are counted, not fatal."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from workbench.embed.models import Embedder, load_embedder
from workbench.embed.spec import ModelSpec, parse_model_spec
from workbench.errors import UserError
from workbench.evaluate.init import INIT_PREFIX, initial_spec
from workbench.evaluate.sources import ImageRef, decode_image

MAX_FAILURE_EXAMPLES = 10


def resolve_spec(text: str, workspace: Path | None) -> ModelSpec:
    """Parse an embed-style model spec; `run:RUN` (a training run's latest checkpoint) and `init:RUN` (its untrained
    starting point) need the workspace."""
    text = (text or "").strip()
    if text.startswith(INIT_PREFIX):
        return parse_model_spec(initial_spec(workspace, text[len(INIT_PREFIX) :]))
    return parse_model_spec(text, workspace=workspace)


def load_model(text: str, workspace: Path | None, device: str = "cpu") -> Embedder:
    """Load a contrastive (image + text) model for evaluation."""
    spec = resolve_spec(text, workspace)
    if not spec.contrastive:
        raise UserError(f"model spec {text!r} has no text tower: zero-shot and retrieval need an open_clip model")
    return load_embedder(spec, device)


class _Images:
    """Map-style dataset: index -> (index, tensor or None when the image does not decode)."""

    def __init__(self, images: list[ImageRef], transform: Callable[[Any], Any]) -> None:
        self.images, self.transform = images, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[int, Any, str]:
        try:
            return index, self.transform(decode_image(self.images[index])), ""
        except Exception as error:  # noqa: BLE001 - any decode failure is counted and reported; the run goes on
            return index, None, f"{type(error).__name__}: {' '.join(str(error).split())[:120]}"


def _collate(items: list[tuple[int, Any, str]]) -> tuple[list[int], Any, list[tuple[int, str]]]:
    import torch

    good = [(i, x) for i, x, _ in items if x is not None]
    failed = [(i, why) for i, x, why in items if x is None]
    stacked = torch.stack([x for _, x in good]) if good else None
    return [i for i, _ in good], stacked, failed


@dataclass(frozen=True)
class ImageFeatures:
    """Normalised image embeddings of the images that decoded; `ok` marks them, `failures` lists the others."""

    features: np.ndarray  # (n, dim) float32, rows of undecodable images are zero
    ok: np.ndarray  # (n,) bool
    failures: list[tuple[int, str]]


def encode_images(
    embedder: Embedder, images: list[ImageRef], batch_size: int = 64, num_workers: int = 0, progress: bool = True
) -> ImageFeatures:
    from torch.utils.data import DataLoader

    loader = DataLoader(
        _Images(images, embedder.transform),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_collate,
        prefetch_factor=4 if num_workers else None,
    )
    features = np.zeros((len(images), embedder.dims["image"]), np.float32)
    ok = np.zeros(len(images), bool)
    failures: list[tuple[int, str]] = []
    with tqdm(total=len(images), desc="images", unit="img", disable=not progress) as bar:
        for indices, batch, failed in loader:
            if indices:
                features[indices] = embedder.encode_images(batch)
                ok[indices] = True
            failures += failed
            bar.update(len(indices) + len(failed))
    return ImageFeatures(features, ok, failures)


def encode_texts(embedder: Embedder, texts: list[str], batch_size: int = 256) -> np.ndarray:
    """Normalised text embeddings, (len(texts), dim) float32."""
    assert embedder.tokenize is not None and embedder.encode_texts is not None
    out = np.zeros((len(texts), embedder.dims["text"]), np.float32)
    for start in range(0, len(texts), batch_size):
        out[start : start + batch_size] = embedder.encode_texts(embedder.tokenize(texts[start : start + batch_size]))
    return out
