"""`workbench enrich`: add PubMed MeSH terms, publication types, abstracts and references to the catalog."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from workbench.enrich import (
    DEFAULT_EUTILS_BASE,
    EnrichConfig,
    EutilsError,
    enrich,
    parse_pmid_text,
    raise_batch_error,
    read_pmid_file,
    skip_batch,
)
from workbench.enrich.pipeline import MAX_BATCH_SIZE
from workbench.errors import InputNotFound, UserError

NAME = "enrich"
HELP = "Fetch PubMed records (MeSH, publication types, abstract, references) into the `pubmed` table."

ERROR_POLICIES = {"stop": raise_batch_error, "skip": skip_batch}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workspace", required=True, help="workspace folder")
    parser.add_argument("--eutils", default=DEFAULT_EUTILS_BASE, help="E-utilities base URL (default: %(default)s)")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("NCBI_API_KEY"),
        help="NCBI API key: 10 instead of 3 requests/s (default: $NCBI_API_KEY)",
    )
    parser.add_argument(
        "--email", default=os.environ.get("NCBI_EMAIL"), help="contact e-mail sent to NCBI (default: $NCBI_EMAIL)"
    )
    parser.add_argument("--pmids", default="", help="extra PMIDs, comma separated")
    parser.add_argument("--pmid-file", help="extra PMIDs from a text file (one per line, '#' comments)")
    parser.add_argument(
        "--only-listed",
        action="store_true",
        help="enrich only --pmids/--pmid-file, not the PMIDs the workspace knows (downloads, articles.parquet)",
    )
    parser.add_argument("--batch-size", type=int, default=MAX_BATCH_SIZE, help="PMIDs per request (default: 200)")
    parser.add_argument(
        "--on-error",
        choices=sorted(ERROR_POLICIES),
        default="stop",
        help="a batch that fails after retries: stop the run, or skip it and retry it next run (default: stop)",
    )
    parser.add_argument("--reparse", action="store_true", help="rebuild existing rows from the cached responses")
    parser.add_argument(
        "--refetch-missing", action="store_true", help="ask NCBI again for PMIDs recorded as missing by earlier runs"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    if not Path(args.workspace).is_dir():
        raise InputNotFound(f"workspace {args.workspace} does not exist")
    pmids = parse_pmid_text(args.pmids, source="--pmids")
    if args.pmid_file:
        pmids += read_pmid_file(args.pmid_file)
    if args.only_listed and not pmids:
        raise UserError("--only-listed needs PMIDs from --pmids or --pmid-file")
    config = EnrichConfig(
        workspace=args.workspace,
        pmids=tuple(pmids),
        include_known=not args.only_listed,
        eutils_base=args.eutils,
        api_key=args.api_key or None,
        email=args.email or None,
        batch_size=args.batch_size,
        reparse=args.reparse,
        refetch_missing=args.refetch_missing,
        on_batch_error=ERROR_POLICIES[args.on_error],
        show_progress=not args.no_progress,
    )
    try:
        summary = enrich(config)
    except EutilsError as error:
        print(
            f"workbench enrich: {error}\nrows fetched so far are saved; re-run the same command to resume",
            file=sys.stderr,
        )
        return 1
    if summary.requested == 0:
        print("nothing to enrich: the workspace lists no PMIDs yet (acquire or extract first, or pass --pmids)")
        return 0
    print("\n".join(summary.lines()))
    return 1 if summary.failed else 0
