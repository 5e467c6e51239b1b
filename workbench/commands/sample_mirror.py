"""`workbench sample-mirror OUT --articles N --seed S`: generate an offline PMC-like FTP tree."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from workbench.errors import UserError
from workbench.mirror import MirrorConfig, PlanConfig, build_sample_mirror

NAME = "sample-mirror"
HELP = (
    "Generate an offline sample of PMC OA laid out like PMC's FTP tree (oa_file_list.csv, "
    "oa_package/xx/yy/PMC….tar.gz) with real medical images, rendered charts and per-figure ground truth "
    "(ground_truth.jsonl). Deterministic for a seed; re-running completes or keeps an existing build."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", type=Path, help="folder to write the mirror into (new, or an earlier sample mirror)")
    parser.add_argument("--articles", type=int, default=200, help="number of articles (default: 200)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed, same bytes (default: 0)")
    parser.add_argument(
        "--image-size",
        type=int,
        nargs=2,
        metavar=("MIN", "MAX"),
        default=PlanConfig().image_sizes,
        help="range of figure image sizes, longer side in px (default: %(default)s)",
    )
    parser.add_argument("--workers", type=int, default=1, help="processes generating packages (default: 1)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    low, high = args.image_size
    if not 16 <= low <= high <= 4096:
        raise UserError(f"--image-size needs 16 <= MIN <= MAX <= 4096, got {low} {high}")
    config = MirrorConfig(plan=PlanConfig(image_sizes=(low, high)), workers=args.workers)
    summary = build_sample_mirror(args.out, args.articles, args.seed, progress=not args.no_progress, config=config)
    print(json.dumps(summary.as_dict(), indent=2))
    return 0
