"""The 2-D embedding map: PCA, then UMAP fitted on a seeded sample and applied to the rest in batches.

Fitting UMAP on all points is what runs out of memory at ~1M points; here it sees at most `sample` points
(default 50,000) after PCA to `pca` dimensions (default 50), and `transform` places the others batch by batch,
so memory grows with the sample, not the archive. Output: WS/catalog/maps/NAME.parquet (key, x float32,
y float32), written atomically; the fitted PCA and UMAP are pickled under WS/models/maps/NAME/.
"""

from __future__ import annotations

import pickle
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workbench.cluster.model import fit_pca
from workbench.cluster.source import MODELS_DIR, as_workspace, check_name, load_embeddings
from workbench.errors import UserError
from workbench.extras import require
from workbench.fileio import atomic_path, write_json_atomically, write_parquet_atomically
from workbench.workspace import Workspace


@dataclass(frozen=True)
class MapConfig:
    sample: int = 50_000
    pca: int = 50
    neighbours: int = 15
    min_dist: float = 0.1
    seed: int = 0
    batch: int = 20_000


@dataclass(frozen=True)
class MapReport:
    name: str
    points: int
    fitted_on: int
    seconds: float
    path: Path

    def describe(self) -> str:
        fitted = f"UMAP fitted on {self.fitted_on}"
        return f"map {self.name}: {self.points} points ({fitted}) in {self.seconds:.1f} s -> {self.path}"


def map_path(workspace: Workspace, name: str) -> Path:
    return workspace.catalog_dir / "maps" / f"{check_name('map', name)}.parquet"


def compute_map(
    vectors: np.ndarray, config: MapConfig = MapConfig(), progress: bool = False
) -> tuple[np.ndarray, dict]:
    """(n, 2) float32 coordinates and the fitted parts {"mean", "components", "umap"}."""
    umap = require("umap", "embed", "workbench map")
    n, dim = vectors.shape
    if n < 4:
        raise UserError(f"a map needs at least 4 embedded images, found {n}")
    rng = np.random.default_rng(config.seed)
    chosen = np.sort(rng.choice(n, min(n, config.sample), replace=False))
    mean, components = fit_pca(vectors[chosen], max(2, min(config.pca, dim, len(chosen) - 1)))

    def project(block: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray((np.asarray(block, np.float32) - mean) @ components.T)

    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=max(2, min(config.neighbours, len(chosen) - 1)),
        min_dist=config.min_dist,
        random_state=config.seed,
        init="spectral" if len(chosen) > 10 else "random",
        low_memory=True,
    )
    coordinates = np.empty((n, 2), np.float32)
    coordinates[chosen] = reducer.fit_transform(project(vectors[chosen])).astype(np.float32)
    rest = np.setdiff1d(np.arange(n), chosen)
    from tqdm import tqdm

    for start in tqdm(range(0, len(rest), config.batch), desc="map: transform", disable=not progress or not len(rest)):
        rows = rest[start : start + config.batch]
        coordinates[rows] = reducer.transform(project(vectors[rows])).astype(np.float32)
    return coordinates, {"mean": mean, "components": components, "umap": reducer}


def build_map(
    workspace: Workspace | str | Path,
    embeddings_name: str,
    name: str | None = None,
    config: MapConfig = MapConfig(),
    *,
    progress: bool = False,
) -> MapReport:
    import pyarrow as pa

    workspace = as_workspace(workspace)
    name = check_name("map", name or embeddings_name)
    embeddings = load_embeddings(workspace, embeddings_name)
    started = time.perf_counter()
    coordinates, fitted = compute_map(embeddings.vectors, config, progress)
    seconds = round(time.perf_counter() - started, 3)
    table = pa.table(
        {
            "key": pa.array(embeddings.keys, pa.string()),
            "x": pa.array(coordinates[:, 0], pa.float32()),
            "y": pa.array(coordinates[:, 1], pa.float32()),
        }
    )
    folder = workspace.root / MODELS_DIR / "maps" / name
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "map.pkl") as temporary, open(temporary, "wb") as handle:
        pickle.dump(fitted, handle, protocol=pickle.HIGHEST_PROTOCOL)
    card = {
        "embeddings": embeddings_name,
        "embeddings_card_sha256": embeddings.card_sha256,
        "points": len(table),
        "fitted_on": min(len(table), config.sample),
        "seconds": seconds,
        **config.__dict__,
    }
    write_json_atomically(card, folder / "card.json")
    path = write_parquet_atomically(table, map_path(workspace, name))
    return MapReport(name, len(table), card["fitted_on"], seconds, path)
