"""`workbench cluster`: PCA + k-means over an embedding set (fit), assign new images, find near-duplicates."""

from __future__ import annotations

import argparse
from pathlib import Path

from workbench.cluster import FitConfig, fit_clustering
from workbench.cluster.assign import assign_new
from workbench.cluster.duplicates import RULES, NearDuplicateConfig, find_near_duplicates
from workbench.commands._argtypes import non_negative_int, positive_int
from workbench.errors import UserError
from workbench.workspace import Workspace

NAME = "cluster"
HELP = "Cluster an embedding set (PCA + k-means), assign new images to saved clusters, or find near-duplicates."
ACTIONS = ("fit", "assign", "near-duplicates")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "actions: fit (the default) fits PCA then k-means and writes WS/catalog/clusters/NAME.parquet (key, "
        "cluster_id, distance), NAME.clusters.parquet and the model under WS/models/clusterings/NAME/; the fitted "
        "clustering becomes the catalog's current one (column cluster_id) unless --no-current. Defaults (--pca 45, "
        "--k 2000, as BIOMEDICA) shrink on small sets: pca <= min(dim, n - 1), k <= max(2, n // 10). "
        "assign puts images of --embeddings that clustering --name has not seen into its saved clusters (no "
        "refit). near-duplicates links figures by pHash distance and/or embedding cosine (--rule) into "
        "WS/catalog/near_duplicates.parquet (column near_duplicate_of of the catalog). Exit 2: bad input, "
        "nothing written."
    )
    parser.add_argument(
        "action", nargs="?", choices=ACTIONS, default="fit", help="fit (default), assign, near-duplicates"
    )
    parser.add_argument("--workspace", required=True, type=Path, help="workspace folder")
    parser.add_argument("--embeddings", required=True, metavar="NAME", help="embedding set under WS/embeddings/")
    parser.add_argument("--name", metavar="CLUSTERING", help="clustering name (default: the embeddings name)")
    parser.add_argument("--pca", type=positive_int, metavar="N", help="PCA components (default 45, scaled down)")
    parser.add_argument("--k", type=positive_int, metavar="N", help="clusters (default 2000, scaled down)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default 0)")
    parser.add_argument("--no-current", action="store_true", help="fit: leave the catalog's current clustering")
    parser.add_argument(
        "--phash-distance",
        type=non_negative_int,
        default=6,
        metavar="BITS",
        help="near-duplicates: max pHash Hamming distance, 0-15 (default 6)",
    )
    parser.add_argument("--cosine", type=float, default=0.97, help="near-duplicates: min cosine (default 0.97)")
    parser.add_argument(
        "--rule", choices=RULES, default="both", help="near-duplicates: both thresholds (default), either, or one"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    workspace = Workspace.at(args.workspace)
    if not workspace.root.is_dir():
        raise UserError(f"no workspace at {workspace.root}")
    if args.action != "fit" and (args.pca or args.k or args.no_current):
        raise UserError(f"--pca, --k and --no-current belong to `cluster fit`, not `cluster {args.action}`")
    if args.action == "fit":
        config = FitConfig(pca=args.pca, k=args.k, seed=args.seed)
        report = fit_clustering(workspace, args.embeddings, args.name, config, make_current=not args.no_current)
    elif args.action == "assign":
        report = assign_new(workspace, args.name or args.embeddings, args.embeddings)
    else:
        config = NearDuplicateConfig(args.phash_distance, args.cosine, args.rule)
        report = find_near_duplicates(workspace, args.embeddings, config)
    print(report.describe())
    return 0
