"""`workbench acquire`: download PMC OA packages into WS/mirror, resumably, recording each in `downloads`.

Exit status: 0 every selected article is downloaded; 1 some failed for good (or were not in the file list),
see the summary and `downloads.reason`/`error`; 2 bad input (source, file list, selection).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from workbench.acquire import (
    DEFAULT_OA_SERVICE,
    DEFAULT_SOURCE,
    AcquireConfig,
    DownloadConfig,
    RetryPolicy,
    Selection,
    acquire,
    parse_since,
    read_pmcid_file,
)
from workbench.licenses import LICENSE_GROUPS

NAME = "acquire"
HELP = "Download PMC Open Access packages (file list, selection, resumable parallel downloads)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = "exit status: 0 all selected articles downloaded; 1 some failed for good (see summary); 2 bad input"
    where = parser.add_argument_group("where")
    where.add_argument(
        "--source",
        default=DEFAULT_SOURCE,
        help=f"base URL laid out like PMC's FTP tree, or a local folder with that layout (default {DEFAULT_SOURCE})",
    )
    where.add_argument("--workspace", required=True, type=Path, help="workspace folder")
    where.add_argument("--file-list", help="path or URL of oa_file_list.csv (default SOURCE/oa_file_list.csv)")
    where.add_argument(
        "--oa-service",
        default=DEFAULT_OA_SERVICE,
        help=f"OA web service asked where a package moved after a 404 (default {DEFAULT_OA_SERVICE}); '' to never ask",
    )
    which = parser.add_argument_group("selection")
    which.add_argument(
        "--license-group",
        action="append",
        metavar="GROUP",
        help=f"keep only these licence groups ({', '.join(LICENSE_GROUPS)}); repeat or comma-separate",
    )
    which.add_argument("--pmcids", help="comma-separated PMCIDs to fetch (e.g. PMC13900,PMC13901)")
    which.add_argument("--pmcid-file", type=Path, help="file with PMCIDs, one per line")
    which.add_argument("--since", help="only articles with Last Updated on or after this date")
    which.add_argument("--sample", type=int, metavar="N", help="a seeded random sample of N articles")
    which.add_argument("--seed", type=int, default=0, help="seed for --sample (default 0)")
    which.add_argument("--limit", type=int, metavar="N", help="at most N articles (first in file-list order)")
    how = parser.add_argument_group("downloading")
    how.add_argument("--concurrency", type=int, default=4, help="parallel connections (default 4)")
    how.add_argument("--timeout", type=float, default=60.0, help="seconds before a stalled request is retried")
    how.add_argument("--retries", type=int, default=5, help="tries per package before it fails (default 5)")
    how.add_argument("--backoff", type=float, default=1.0, help="backoff base in seconds (default 1.0)")
    how.add_argument("--retry-failed", action="store_true", help="try again articles that failed in earlier runs")
    how.add_argument("--no-progress", action="store_true", help="no progress bar")


def _selection(args: argparse.Namespace) -> Selection:
    groups = None
    if args.license_group:
        groups = tuple(group.strip() for value in args.license_group for group in value.split(",") if group.strip())
    pmcids: tuple[str, ...] | None = None
    if args.pmcids is not None or args.pmcid_file is not None:
        listed = tuple(token.strip() for token in (args.pmcids or "").split(",") if token.strip())
        pmcids = listed + (read_pmcid_file(args.pmcid_file) if args.pmcid_file else ())
    since = parse_since(args.since) if args.since else None
    return Selection(groups, pmcids, since, sample=args.sample, seed=args.seed, limit=args.limit)


def config_from_args(args: argparse.Namespace) -> AcquireConfig:
    return AcquireConfig(
        workspace=args.workspace,
        source=args.source,
        file_list=args.file_list,
        selection=_selection(args),
        download=DownloadConfig(
            concurrency=args.concurrency,
            timeout=args.timeout,
            retry=RetryPolicy(attempts=args.retries, backoff_base=args.backoff),
        ),
        oa_service=args.oa_service or None,
        retry_failed=args.retry_failed,
        progress=not args.no_progress,
    )


def run(args: argparse.Namespace) -> int:
    summary = acquire(config_from_args(args))
    print(summary.describe())
    return summary.exit_code
