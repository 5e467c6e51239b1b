"""`workbench index`: faiss vector indexes over an embedding set's image and caption vectors, WS/indexes/NAME/,
the catalog's BM25 text index and the BM25 index of full article text, WS/indexes/articles/."""

from __future__ import annotations

import argparse
from pathlib import Path

from workbench.catalog import refresh_catalog
from workbench.commands._argtypes import positive_int
from workbench.errors import UserError
from workbench.search.articles import update_article_index
from workbench.search.index import IndexConfig, build_index
from workbench.workspace import Workspace

NAME = "index"
HELP = "Vector indexes (faiss) of an embedding set's image and caption vectors, for `workbench serve` and search."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "Writes WS/indexes/NAME/ (index.json, keys, one faiss index per tower). Exact (Flat) up to --flat-max-rows "
        "vectors, IVF with 8-bit scalar-quantised codes above; opened memory-mapped. A re-run after new shards "
        "were embedded adds only their rows. The BM25 text index is the catalog's, built here "
        "when missing. WS/indexes/articles/ is a BM25 index of each article's title, abstract and text (the "
        "`articles` search list); a re-run re-indexes only new or changed articles and drops gone ones. "
        "Exit 2: bad input."
    )
    parser.add_argument("--workspace", required=True, type=Path, help="workspace folder")
    parser.add_argument("--embeddings", required=True, metavar="NAME", help="embedding set under WS/embeddings/")
    parser.add_argument(
        "--flat-max-rows", type=positive_int, default=200_000, metavar="N", help="exact index up to N rows (200000)"
    )
    parser.add_argument("--nlist", type=positive_int, metavar="N", help="IVF lists (default: from the size)")
    parser.add_argument("--nprobe", type=positive_int, default=64, metavar="N", help="IVF lists searched (64)")
    parser.add_argument("--rebuild", action="store_true", help="build from scratch (vectors, article index)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    workspace = Workspace.at(args.workspace)
    if not workspace.root.is_dir():
        raise UserError(f"no workspace at {workspace.root}")
    config = IndexConfig(flat_max_rows=args.flat_max_rows, nlist=args.nlist, nprobe=args.nprobe)
    print(build_index(workspace, args.embeddings, config, rebuild=args.rebuild).describe())
    refreshed = refresh_catalog(workspace, search_index=True, progress=not args.no_progress)
    print(f"BM25 text index (catalog): {'rebuilt' if refreshed.rebuilt else 'up to date'}")
    if all((workspace.catalog_dir / f"{table}.parquet").is_file() for table in ("articles", "figures")):
        print(update_article_index(workspace, full=args.rebuild, progress=not args.no_progress).describe())
    return 0
