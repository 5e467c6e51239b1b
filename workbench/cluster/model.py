"""PCA + k-means as BIOMEDICA ran them (45 components, k = 2000), fitted once and saved so new images join later.

Scaling rule (the defaults shrink on small sets; explicit values must fit): with n vectors of dimension d,
PCA keeps `min(pca, d, n - 1)` components and k-means uses `min(k, max(2, n // 10))` clusters when `--pca` /
`--k` were left at their defaults. An explicit `--k` above n, or `--pca` above `min(d, n)`, is bad input.

PCA is the eigen-decomposition of the float64 covariance (deterministic; each component's sign fixed so its
largest coordinate is positive). k-means is faiss's (`faiss.Kmeans`, 20 iterations, seeded; it trains on at
most 256 points per centroid, a seeded sample) or scikit-learn's `KMeans` when faiss is not installed.
Saved under WS/models/clusterings/NAME/: `model.npz` (mean, components, centroids) and `card.json` written last.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from workbench.cluster.source import MODELS_DIR, Embeddings, check_name
from workbench.errors import InputNotFound, UserError
from workbench.fileio import CorruptFile, atomic_path, read_json, write_json_atomically
from workbench.workspace import Workspace

DEFAULT_PCA = 45
DEFAULT_K = 2000
DEFAULT_SEED = 0
NITER = 20
MAX_POINTS_PER_CENTROID = 256
MODEL_VERSION = 1
# Card fields that identify the model behind an embedding set (counts and timings change with new shards).
MODEL_FIELDS = ("spec", "model", "checkpoint_sha256", "checkpoint", "preprocessing", "dims", "normalised")


@dataclass(frozen=True)
class FitConfig:
    """What `fit` was asked for; None means the scaled-down default."""

    pca: int | None = None
    k: int | None = None
    seed: int = DEFAULT_SEED


def effective_sizes(n: int, dim: int, config: FitConfig) -> tuple[int, int]:
    """(pca components, k) for n vectors of dimension `dim`, per the module's scaling rule."""
    if n < 2:
        raise UserError(f"clustering needs at least 2 embedded images, found {n}")
    if config.pca is not None and not 1 <= config.pca <= min(dim, n):
        raise UserError(f"--pca {config.pca} must be between 1 and {min(dim, n)} (dimension {dim}, {n} images)")
    if config.k is not None and not 2 <= config.k <= n:
        raise UserError(f"--k {config.k} must be between 2 and the number of embedded images ({n})")
    pca = config.pca if config.pca is not None else max(1, min(DEFAULT_PCA, dim, n - 1))
    k = config.k if config.k is not None else min(DEFAULT_K, max(2, n // 10))
    return pca, k


@dataclass(frozen=True)
class ClusterModel:
    """A fitted PCA (mean, components) and k-means centroids in PCA space."""

    mean: np.ndarray  # (d,) float32
    components: np.ndarray  # (pca, d) float32
    centroids: np.ndarray  # (k, pca) float32

    @property
    def k(self) -> int:
        return int(self.centroids.shape[0])

    def project(self, vectors: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray((np.asarray(vectors, np.float32) - self.mean) @ self.components.T, np.float32)

    def nearest(self, vectors: np.ndarray, batch: int = 65_536) -> tuple[np.ndarray, np.ndarray]:
        """Cluster id (int32) and Euclidean distance in PCA space (float32) of each vector."""
        ids = np.empty(len(vectors), np.int32)
        distances = np.empty(len(vectors), np.float32)
        squared_centroids = (self.centroids.astype(np.float64) ** 2).sum(axis=1)
        for start in range(0, len(vectors), batch):
            points = self.project(vectors[start : start + batch]).astype(np.float64)
            squared = (points**2).sum(axis=1)[:, None] - 2 * points @ self.centroids.T.astype(np.float64)
            squared += squared_centroids[None, :]
            best = squared.argmin(axis=1)
            ids[start : start + batch] = best
            distances[start : start + batch] = np.sqrt(np.maximum(squared[np.arange(len(best)), best], 0))
        return ids, distances


def fit_pca(vectors: np.ndarray, components: int, batch: int = 65_536) -> tuple[np.ndarray, np.ndarray]:
    """Mean and top `components` principal axes, from the float64 covariance accumulated in batches."""
    n, dim = vectors.shape
    total = np.zeros(dim, np.float64)
    gram = np.zeros((dim, dim), np.float64)
    for start in range(0, n, batch):
        block = np.asarray(vectors[start : start + batch], np.float64)
        total += block.sum(axis=0)
        gram += block.T @ block
    mean = total / n
    covariance = gram / n - np.outer(mean, mean)
    values, vectors_ = np.linalg.eigh(covariance)
    axes = vectors_[:, np.argsort(values)[::-1][:components]].T
    signs = np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)])
    axes *= np.where(signs == 0, 1, signs)[:, None]
    return mean.astype(np.float32), axes.astype(np.float32)


def kmeans_backend() -> str:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return "sklearn"
    return "faiss"


def fit_kmeans(points: np.ndarray, k: int, seed: int, backend: str | None = None) -> np.ndarray:
    """(k, dim) float32 centroids of `points`, seeded."""
    backend = backend or kmeans_backend()
    points = np.ascontiguousarray(points, np.float32)
    if backend == "faiss":
        import faiss

        kmeans = faiss.Kmeans(
            points.shape[1],
            k,
            niter=NITER,
            seed=seed,
            max_points_per_centroid=MAX_POINTS_PER_CENTROID,
            min_points_per_centroid=1,  # small sets are fine (the scaling rule keeps ~10 per centroid)
            verbose=False,
        )
        kmeans.train(points)
        return np.asarray(kmeans.centroids, np.float32).copy()
    from sklearn.cluster import KMeans

    sample = points
    if len(points) > k * MAX_POINTS_PER_CENTROID:
        chosen = np.random.default_rng(seed).choice(len(points), k * MAX_POINTS_PER_CENTROID, replace=False)
        sample = points[np.sort(chosen)]
    model = KMeans(n_clusters=k, n_init=1, max_iter=NITER, random_state=seed).fit(sample)
    return model.cluster_centers_.astype(np.float32)


@dataclass(frozen=True)
class FitResult:
    model: ClusterModel
    card: dict[str, Any]


def fit(embeddings: Embeddings, config: FitConfig, backend: str | None = None) -> FitResult:
    """Fit PCA then k-means on all vectors of `embeddings` (seeded, deterministic)."""
    started = time.perf_counter()
    pca, k = effective_sizes(len(embeddings.keys), embeddings.dim, config)
    mean, components = fit_pca(embeddings.vectors, pca)
    partial = ClusterModel(mean, components, np.zeros((0, pca), np.float32))
    projected = partial.project(embeddings.vectors)
    backend = backend or kmeans_backend()
    centroids = fit_kmeans(projected, k, config.seed, backend)
    model = ClusterModel(mean, components, centroids)
    _, distances = model.nearest(embeddings.vectors)
    card = {
        "version": MODEL_VERSION,
        "embeddings": embeddings.name,
        "embeddings_card_sha256": embeddings.card_sha256,
        "embeddings_model": model_identity(read_json(embeddings.folder / "card.json")),
        "dim": embeddings.dim,
        "requested": asdict(config),
        "pca": pca,
        "k": k,
        "seed": config.seed,
        "backend": backend,
        "niter": NITER,
        "fitted_on": len(embeddings.keys),
        "inertia": float((distances.astype(np.float64) ** 2).sum()),
        "explained_variance": _explained(embeddings.vectors, mean, components),
        "seconds": round(time.perf_counter() - started, 3),
    }
    return FitResult(model, card)


def _explained(vectors: np.ndarray, mean: np.ndarray, components: np.ndarray) -> float:
    sample = np.asarray(vectors[:100_000], np.float64) - mean
    total = float((sample**2).sum())
    return round(float(((sample @ components.T.astype(np.float64)) ** 2).sum()) / total, 6) if total else 1.0


def model_identity(card: dict[str, Any]) -> dict[str, Any]:
    return {name: card[name] for name in MODEL_FIELDS if name in card}


def model_folder(workspace: Workspace, name: str) -> Path:
    return workspace.root / MODELS_DIR / "clusterings" / check_name("clustering", name)


def save_model(workspace: Workspace, name: str, result: FitResult) -> Path:
    """Write model.npz, then card.json (last: a folder without a card is not a clustering)."""
    folder = model_folder(workspace, name)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "card.json").unlink(missing_ok=True)
    with atomic_path(folder / "model.npz") as temporary, open(temporary, "wb") as handle:
        model = result.model
        np.savez(handle, mean=model.mean, components=model.components, centroids=model.centroids)
    write_json_atomically(result.card, folder / "card.json")
    return folder


def load_model(workspace: Workspace, name: str) -> tuple[ClusterModel, dict[str, Any]]:
    folder = model_folder(workspace, name)
    if not (folder / "card.json").is_file():
        raise InputNotFound(f"no clustering {name!r} in {folder.parent}; run `workbench cluster` first")
    try:
        card = read_json(folder / "card.json")
        with np.load(folder / "model.npz") as data:
            model = ClusterModel(data["mean"], data["components"], data["centroids"])
    except (CorruptFile, OSError, KeyError, ValueError) as error:
        raise UserError(f"clustering {name!r} in {folder} is damaged ({error}); fit it again") from error
    return model, card
