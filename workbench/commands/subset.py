"""`workbench subset`: copy the samples a filter selects into new WebDataset shards under WS/subsets/NAME/."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from workbench.catalog import open_catalog
from workbench.catalog.arguments import add_filter_arguments, filter_from_args, filter_given
from workbench.catalog.subset import SubsetDiffers, SubsetSpec, materialise_subset, reproduce_subset
from workbench.catalog.subset_split import BALANCE_FIELDS, Sampling, materialise_sampled, parse_split
from workbench.commands._argtypes import non_negative_int, positive_int
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
        "inside WS/shards. Re-running an identical subset copies nothing. "
        "Training data: --split train=0.8,val=0.1,test=0.1 [--seed S] writes WS/subsets/NAME/SPLIT/ (shards, "
        "keys.txt, manifest.json each; split.json beside them) split by article, samples shuffled across shards, "
        "training images that nearly duplicate held-out ones dropped; --balance FIELD --cap N keeps at most N "
        "samples per value; --exclude-concept C; --exclude-eval SUBSET|KEYS_FILE drops an evaluation set's keys, "
        "articles and near-duplicate images; --labels FILE gives concepts (JSONL, e.g. ground_truth.jsonl). "
        "Exit 2: bad input."
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
    sampling = parser.add_argument_group("training data (split by article, balance, exclude; samples shuffled)")
    sampling.add_argument("--split", metavar="NAME=F,...", help="e.g. train=0.8,val=0.1,test=0.1 (by article)")
    sampling.add_argument("--seed", type=non_negative_int, metavar="S", help="seed of split, caps and shuffle (0)")
    sampling.add_argument("--balance", choices=sorted(BALANCE_FIELDS), help="field to cap per value (with --cap)")
    sampling.add_argument("--cap", type=positive_int, metavar="N", help="at most N samples per --balance value")
    sampling.add_argument("--exclude-concept", action="append", default=[], metavar="C", help="drop concept C")
    sampling.add_argument(
        "--exclude-eval",
        action="append",
        default=[],
        metavar="SET",
        help="evaluation set (subset NAME[/SPLIT] or keys file): drop its keys, articles, near-duplicate images",
    )
    sampling.add_argument("--labels", metavar="FILE", help="concepts as JSONL (key or pmcid+figure_id, concept)")
    sampling.add_argument("--shuffle", action="store_true", help="shuffle samples across shards (seeded)")
    add_filter_arguments(parser)


def run(args: argparse.Namespace) -> int:
    if args.from_manifest and filter_given(args):
        raise UserError("give either --from-manifest or filter flags, not both (the manifest holds the filter)")
    if not args.from_manifest and not args.name:
        raise UserError("--name is required (or --from-manifest FILE)")
    sampled = any(
        (args.split, args.seed is not None, args.balance, args.cap, args.exclude_concept, args.exclude_eval)
    ) or bool(args.shuffle or args.labels)
    if args.from_manifest and sampled:
        raise UserError("--from-manifest rebuilds one subset as recorded: no --split/--balance/--exclude-* with it")
    selection = None if args.from_manifest else filter_from_args(args)
    if sampled:
        sampling = Sampling(
            seed=args.seed or 0,
            split=parse_split(args.split) if args.split else (),
            balance=args.balance,
            cap=args.cap,
            exclude_concepts=tuple(args.exclude_concept),
            exclude_eval=tuple(args.exclude_eval),
            labels=str(Path(args.labels).expanduser().resolve()) if args.labels else None,
        )
        with open_catalog(args.workspace, progress=not args.no_progress) as catalog:
            results = materialise_sampled(
                catalog,
                args.name,
                selection,
                sampling,
                shard_samples=args.shard_samples,
                force=args.force,
                progress=not args.no_progress,
            )
        for result in results:
            print(result.describe())
        return 0
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
