"""`workbench subset`: copy the samples a filter selects into new WebDataset shards under WS/subsets/NAME/."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from workbench.catalog import open_catalog
from workbench.catalog.arguments import add_filter_arguments, filter_from_args, filter_given
from workbench.catalog.subset import SubsetDiffers, SubsetSpec, materialise_subset, reproduce_subset
from workbench.commands._argtypes import positive_int
from workbench.errors import EXIT_FAILED_ITEMS, UserError

NAME = "subset"
HELP = "Materialise a filtered subset as WebDataset shards + manifest (or rebuild one from its manifest)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "examples: workbench subset --workspace WS --name com --license-group commercial; "
        "workbench subset --workspace WS --name com --where \"license_group = 'commercial'\"; "
        "workbench subset --workspace WS --from-manifest WS/subsets/com/manifest.json --name com-copy. "
        "Subset shards carry the catalog's current metadata (MeSH, annotation labels, licence) in each .json "
        "member; .jpg and .txt are the source bytes. --from-manifest rebuilds byte for byte while that metadata "
        "is unchanged; when the catalog changed since, it names the differing shards and why, keeps nothing "
        "and exits 1, unless --force (then the rebuilt subset is kept). The manifest's source shards must lie "
        "inside WS/shards. Re-running an identical subset copies nothing. Exit 2: bad input."
    )
    parser.add_argument("--workspace", required=True, type=Path, help="workspace folder")
    parser.add_argument("--name", help="subset folder name under WS/subsets (default with --from-manifest: its name)")
    parser.add_argument(
        "--from-manifest", type=Path, metavar="FILE", help="rebuild the subset a manifest.json describes, byte for byte"
    )
    parser.add_argument(
        "--shard-samples",
        type=positive_int,
        default=10_000,
        metavar="N",
        help="samples per output shard (default 10000)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace an existing different subset of that name; with --from-manifest, also keep a rebuilt "
        "subset that differs from the manifest (the catalog's metadata changed since)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_filter_arguments(parser)


def run(args: argparse.Namespace) -> int:
    if args.from_manifest and filter_given(args):
        raise UserError("give either --from-manifest or filter flags, not both (the manifest holds the filter)")
    if not args.from_manifest and not args.name:
        raise UserError("--name is required (or --from-manifest FILE)")
    selection = None if args.from_manifest else filter_from_args(args)
    with open_catalog(args.workspace, progress=not args.no_progress) as catalog:
        if args.from_manifest:
            try:
                result = reproduce_subset(
                    catalog, args.from_manifest, name=args.name, force=args.force, progress=not args.no_progress
                )
            except SubsetDiffers as error:
                print(f"workbench subset: not reproduced: {error}", file=sys.stderr)
                return EXIT_FAILED_ITEMS
        else:
            spec = SubsetSpec(args.name, selection, args.shard_samples, args.force)
            result = materialise_subset(catalog, spec, progress=not args.no_progress)
    print(result.describe())
    return 0
