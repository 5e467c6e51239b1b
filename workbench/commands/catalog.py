"""`workbench catalog`: refresh WS/catalog.duckdb, count a filter, print statistics, full-text search."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from workbench.catalog import open_catalog, refresh_catalog
from workbench.catalog.arguments import add_filter_arguments, filter_from_args
from workbench.catalog.filters import TEXT_MODES
from workbench.catalog.stats import catalog_summary, count_by
from workbench.commands._argtypes import positive_int

NAME = "catalog"
HELP = "Refresh the DuckDB catalog, count what a filter selects, print statistics, or search captions."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    refresh = actions.add_parser("refresh", help="materialise WS/catalog/*.parquet into WS/catalog.duckdb (idempotent)")
    refresh.add_argument("--no-search-index", action="store_true", help="skip the full-text index")
    refresh.add_argument("--memory-limit", metavar="SIZE", help="cap DuckDB's memory, e.g. 6GB (spills beyond)")
    refresh.add_argument(
        "--compact",
        action="store_true",
        help="rewrite catalog.duckdb without the free space replaced tables left behind",
    )
    refresh.add_argument(
        "--full",
        action="store_true",
        help="rebuild the cache's base from figures.parquet instead of adding new extraction units incrementally",
    )
    count = actions.add_parser("count", help="number of figures a filter selects, by licence group")
    add_filter_arguments(count)
    stats = actions.add_parser("stats", help="summary and counts by licence, year, journal, type (JSON)")
    stats.add_argument("--top", type=positive_int, default=10, metavar="N", help="values per count (default 10)")
    add_filter_arguments(stats)
    search = actions.add_parser("search", help="best BM25 matches over captions, in-line references, titles")
    search.add_argument("query", help="words to search for")
    search.add_argument("--limit", type=positive_int, default=10, metavar="N", help="results (default 10)")
    search.add_argument(
        "--mode",
        choices=TEXT_MODES,
        default="any",
        help="any word (default), all words, or the exact phrase (words in order)",
    )
    add_filter_arguments(search)
    for sub in (refresh, count, stats, search):
        sub.add_argument("--workspace", required=True, type=Path, help="workspace folder")
        sub.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    if args.action == "refresh":
        report = refresh_catalog(
            args.workspace,
            search_index=not args.no_search_index,
            progress=not args.no_progress,
            memory_limit=args.memory_limit,
            compact=args.compact,
            full=args.full,
        )
        print(report.describe())
        return 0
    selection = filter_from_args(args)
    with open_catalog(args.workspace, progress=not args.no_progress) as catalog:
        if args.action == "count":
            by_group = {group: n for group, n in count_by(catalog, "license_group", selection, top=10)}
            print(json.dumps({"figures": sum(by_group.values()), "by_license_group": by_group}, indent=2))
        elif args.action == "stats":
            summary = catalog_summary(catalog, selection)
            for column in ("license_group", "article_year", "article_journal", "article_type", "article_mesh_terms"):
                summary[f"by_{column}"] = dict(count_by(catalog, column, selection, top=args.top))
            print(json.dumps(summary, indent=2, default=str))
        else:
            for hit in catalog.search(args.query, args.limit, selection, args.mode):
                print(f"{hit.score:8.3f}  {hit.key}  {hit.reason()}")
    return 0
