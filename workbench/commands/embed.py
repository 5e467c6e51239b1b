"""`workbench embed`: image (and caption) embeddings of the catalog or a subset, into WS/embeddings/NAME/.

Exit status: 0 done (or nothing to do); 2 bad input (unknown model spec, missing weights, an hf-hub id not in
the local cache, a different model for an existing NAME without --force, embeddings of another workspace).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from workbench.commands._argtypes import non_negative_int, positive_int
from workbench.embed.run import EmbedConfig, run_embedding
from workbench.errors import UserError

NAME = "embed"
HELP = "Embed the catalog's images (and captions) with builtin descriptors, an open_clip or a timm model."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "SPEC: builtin (classic image descriptors, no weights); open_clip:ARCH:PRETRAINED with PRETRAINED a "
        "checkpoint file, hf-hub:ORG/REPO from the local Hugging Face cache (never downloaded) or a cached tag "
        "(ARCH may be a model-config .json file); timm:NAME[:WEIGHTS_FILE] (pooled features, image only), e.g. "
        "timm:vit_large_patch14_reg4_dinov2:/models/dinov2.safetensors; run:RUN (training run RUN's latest "
        "checkpoint, WS/training/RUN, `workbench train`). Output: WS/embeddings/NAME/ (card.json, "
        "per source shard NNNNNN.keys.txt, .image.npy, .text.npy, .done.json). Killed and re-run, it resumes; "
        "after an incremental extract only the new shards are embedded. exit status: 0 done; 2 bad input"
    )
    parser.add_argument("--workspace", required=True, type=Path, help="workspace folder")
    parser.add_argument(
        "--model",
        required=True,
        metavar="SPEC",
        help="builtin | open_clip:ARCH:PRETRAINED | timm:NAME[:FILE] | run:RUN",
    )
    parser.add_argument("--name", help="embedding set name under WS/embeddings (default: from the model spec)")
    parser.add_argument(
        "--subset", metavar="SUBSET", help="embed the samples of WS/subsets/SUBSET instead of the catalog"
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the model runs (default cpu)")
    parser.add_argument(
        "--batch-size", type=positive_int, default=64, metavar="N", help="images per batch (default 64)"
    )
    parser.add_argument(
        "--num-workers",
        type=non_negative_int,
        metavar="N",
        help="DataLoader processes decoding images while the model runs (default min(2, cores); 0: in this process)",
    )
    parser.add_argument(
        "--threads",
        type=positive_int,
        metavar="N",
        help="torch threads for the model on cpu (default: the cores the decoding workers leave free, at least 1)",
    )
    parser.add_argument(
        "--workers",
        type=non_negative_int,
        metavar="N",
        help="embed shards on a Dask LocalCluster of N single-threaded processes (default: no Dask; one process "
        "with --num-workers decoding processes)",
    )
    parser.add_argument("--scheduler", metavar="ADDR", help="a running Dask scheduler, e.g. tcp://10.0.0.5:8786")
    parser.add_argument("--force", action="store_true", help="replace an existing set NAME made with another model")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    if args.scheduler and args.workers:
        raise UserError("give either --workers or --scheduler, not both")
    config = EmbedConfig(
        workspace=args.workspace,
        model=args.model,
        name=args.name,
        subset=args.subset,
        device=args.device,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        threads=args.threads,
        workers=args.workers or None,
        scheduler=args.scheduler,
        force=args.force,
        progress=not args.no_progress,
    )
    print(run_embedding(config).describe())
    return 0
