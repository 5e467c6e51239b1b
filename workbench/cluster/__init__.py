"""Clusters, the 2-D map and near-duplicates of an embedding set (issue 9).

- `model`: PCA + k-means fit, saved under WS/models/clusterings/NAME/ (scaling rule in its docstring)
- `assign`: per-image assignments and the cluster table under WS/catalog/clusters/, `assign_new` without refit
- `naming`: provisional cluster names from caption terms
- `umap_map`: the 2-D UMAP map, WS/catalog/maps/NAME.parquet
- `duplicates`: near-duplicate groups by pHash and cosine, WS/catalog/near_duplicates.parquet

The catalog's `figures` table shows `cluster_id` of the current clustering and `near_duplicate_of`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from workbench.cluster.assign import assign_all, set_current, write_assignments, write_cluster_table
from workbench.cluster.model import FitConfig, fit, model_folder, save_model
from workbench.cluster.source import as_workspace, check_name, load_embeddings, writing
from workbench.workspace import Workspace


@dataclass(frozen=True)
class FitReport:
    name: str
    images: int
    pca: int
    k: int
    inertia: float
    seconds: float
    backend: str
    current: bool

    def describe(self) -> str:
        current = "; now the current clustering" if self.current else ""
        return (
            f"clustering {self.name}: {self.images} images, PCA {self.pca} components, k = {self.k} ({self.backend}), "
            f"inertia {self.inertia:.4g}, {self.seconds:.1f} s{current}"
        )


def fit_clustering(
    workspace: Workspace | str | Path,
    embeddings_name: str,
    name: str | None = None,
    config: FitConfig | None = None,
    *,
    make_current: bool = True,
    backend: str | None = None,
) -> FitReport:
    """Fit, save the model, write assignments and the cluster table; all inputs checked before any write."""
    workspace = as_workspace(workspace)
    name = check_name("clustering", name or embeddings_name)
    embeddings = load_embeddings(workspace, embeddings_name)
    result = fit(embeddings, config or FitConfig(), backend)
    assignments = assign_all(result.model, embeddings)
    with writing(workspace, f"clustering {name}"):
        save_model(workspace, name, result)
        write_assignments(workspace, name, assignments)
        write_cluster_table(workspace, name, assignments, result.model.k)
        if make_current:
            set_current(workspace, name)
    card = result.card
    return FitReport(
        name,
        len(embeddings.keys),
        card["pca"],
        card["k"],
        card["inertia"],
        card["seconds"],
        card["backend"],
        make_current,
    )


__all__ = ["FitConfig", "FitReport", "fit_clustering", "model_folder"]
