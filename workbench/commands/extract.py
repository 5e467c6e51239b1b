"""`workbench extract`: packages -> WebDataset shards (WS/shards) + Parquet catalog (WS/catalog), on Dask.

Exit status: 0 all work units finished; 1 some work units failed (re-run to retry them); 2 bad input.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from workbench.commands._argtypes import non_negative_int, positive_int
from workbench.errors import InputNotFound, UserError
from workbench.extract.pipeline import ExtractionConfig, run_extraction

NAME = "extract"
HELP = "Extract image-caption pairs from acquired packages into WebDataset shards and the Parquet catalog."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "Killed and re-run, it resumes: finished shards are kept, unfinished ones are redone. "
        "exit status: 0 done; 1 some work units failed (re-run to retry); 2 bad input"
    )
    parser.add_argument("--workspace", required=True, type=Path, help="workspace folder")
    parser.add_argument(
        "--packages",
        nargs="+",
        type=Path,
        metavar="PATH",
        help="package files (.tar.gz), extracted package folders, or folders holding them "
        "(default: everything acquired into WS/mirror)",
    )
    parser.add_argument(
        "--workers",
        type=non_negative_int,
        metavar="N",
        help="Dask worker processes on this machine (default: one per core; 0: run in this "
        "process without Dask, for debugging)",
    )
    parser.add_argument(
        "--scheduler",
        metavar="ADDR",
        help="address of a running Dask scheduler, e.g. tcp://10.0.0.5:8786 (workers must see "
        "the workspace at the same path)",
    )
    parser.add_argument(
        "--shard-size",
        type=positive_int,
        default=10_000,
        metavar="N",
        help="target image-caption pairs per shard (default 10000)",
    )
    parser.add_argument("--limit", type=non_negative_int, metavar="N", help="extract at most N new packages this run")
    parser.add_argument(
        "--full-text-in-shards",
        action="store_true",
        help="also put each article's full text into every sample's JSON (BIOMEDICA's `article_text`); "
        "by default it is only in WS/catalog/articles.parquet, once per article",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _extractor_settings(args: argparse.Namespace) -> dict:
    """The extractor for non-default per-package settings (a picklable partial, as Dask needs)."""
    if not args.full_text_in_shards:
        return {}
    from functools import partial

    from workbench.extract.article import ExtractConfig, extract_package

    return {"extractor": partial(extract_package, config=ExtractConfig(full_text_in_shards=True))}


def run(args: argparse.Namespace) -> int:
    if args.scheduler and args.workers is not None:
        raise UserError("give either --workers or --scheduler, not both")
    if not args.packages and not Path(args.workspace).is_dir():
        raise InputNotFound(
            f"workspace {args.workspace} does not exist: run `workbench acquire` first or pass --packages"
        )
    config = ExtractionConfig(
        workspace=args.workspace,
        packages=tuple(args.packages or ()),
        shard_size=args.shard_size,
        workers=args.workers,
        scheduler=args.scheduler,
        limit=args.limit,
        progress=not args.no_progress,
        **_extractor_settings(args),
    )
    report = run_extraction(config)
    print(report.describe())
    return 1 if report.failed_units else 0
