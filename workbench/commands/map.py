"""`workbench map`: the 2-D UMAP map of an embedding set, WS/catalog/maps/NAME.parquet (key, x, y)."""

from __future__ import annotations

import argparse
from pathlib import Path

from workbench.cluster.umap_map import MapConfig, build_map
from workbench.commands._argtypes import non_negative_int, positive_int
from workbench.errors import UserError
from workbench.workspace import Workspace

NAME = "map"
HELP = "2-D UMAP map of an embedding set: PCA, UMAP fitted on a sample, the rest transformed in batches."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "Writes WS/catalog/maps/NAME.parquet (key, x, y) atomically and pickles the fitted PCA + UMAP under "
        "WS/models/maps/NAME/. Memory grows with --sample, not with the number of images. Exit 2: bad input."
    )
    parser.add_argument("--workspace", required=True, type=Path, help="workspace folder")
    parser.add_argument("--embeddings", required=True, metavar="NAME", help="embedding set under WS/embeddings/")
    parser.add_argument("--name", help="map name (default: the embeddings name)")
    parser.add_argument("--sample", type=positive_int, default=50_000, help="points UMAP is fitted on (default 50000)")
    parser.add_argument("--pca", type=positive_int, default=50, help="PCA dimensions before UMAP (default 50)")
    parser.add_argument("--neighbours", type=positive_int, default=15, help="UMAP n_neighbors (default 15)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default 0)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    workspace = Workspace.at(args.workspace)
    if not workspace.root.is_dir():
        raise UserError(f"no workspace at {workspace.root}")
    config = MapConfig(sample=args.sample, pca=args.pca, neighbours=args.neighbours, seed=args.seed)
    print(build_map(workspace, args.embeddings, args.name, config, progress=not args.no_progress).describe())
    return 0
