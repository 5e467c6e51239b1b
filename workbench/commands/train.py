"""`workbench train`: continual CLIP (pre)training with open_clip_train on a subset or on any WebDataset shards."""

from __future__ import annotations

import argparse
from pathlib import Path

from workbench.commands._argtypes import non_negative_int, positive_int

NAME = "train"
HELP = "Train or continue a CLIP model with open_clip_train on a subset or WebDataset shards (resumable)."


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "examples: workbench train --workspace WS --subset demo/train --recipe tiny-cpu --name tiny; "
        "workbench train --workspace WS --data '/data/shards/{000000..000099}.tar' --recipe bmca-clip-vit-l-14 "
        "--pretrained vit-l-14.bin --name bmca --gpus 8; --data https://host/shards/{0000..0099}.tar (sizes.json "
        "beside them counts the samples) or --data 'pipe:curl -s -L -H \"Authorization: Bearer $HF_TOKEN\" URL' "
        "--samples N. Output: WS/training/RUN/ (checkpoints/epoch_N.pt, epoch_latest.pt, params.json, "
        "metrics.jsonl, out.log). Re-running the same command after a kill resumes from the last checkpoint; "
        "`workbench embed --model run:RUN` uses the latest checkpoint. Exit 2: bad input."
    )
    parser.add_argument("--workspace", required=True, type=Path, help="workspace folder")
    parser.add_argument("--name", required=True, metavar="RUN", help="run name: WS/training/RUN")
    parser.add_argument("--subset", metavar="NAME[/SPLIT]", help="train on a subset (e.g. demo/train)")
    parser.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="INPUT",
        help="shard file, brace pattern, http(s) URL or pipe: command (repeatable; instead of --subset)",
    )
    parser.add_argument("--samples", type=positive_int, metavar="N", help="samples per epoch (when not countable)")
    parser.add_argument("--val-subset", metavar="NAME/SPLIT", help="open_clip_train's retrieval metrics each epoch")
    parser.add_argument("--recipe", default="tiny-cpu", help="recipe name in data_catalog/training or a .yaml path")
    parser.add_argument("--model", help="override the recipe's open_clip architecture (or a model-config .json)")
    parser.add_argument("--pretrained", metavar="FILE", help="checkpoint to continue pretraining from")
    parser.add_argument("--epochs", type=positive_int, metavar="N", help="override the recipe's epochs")
    parser.add_argument("--batch-size", type=positive_int, metavar="N", help="override the recipe's batch size")
    parser.add_argument("--lr", type=_positive_float, help="override the recipe's learning rate")
    parser.add_argument("--workers", type=non_negative_int, metavar="N", help="DataLoader workers per device")
    parser.add_argument("--seed", type=non_negative_int, help="override the recipe's seed")
    parser.add_argument("--gpus", type=non_negative_int, default=0, metavar="N", help="N >= 1: launch via torchrun")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="device without --gpus")
    parser.add_argument("--print-command", action="store_true", help="print the exact command line and stop")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_config(args: argparse.Namespace):  # noqa: ANN201
    from workbench.train.config import TrainConfig, load_recipe

    overrides = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "workers": args.workers,
        "seed": args.seed,
        "pretrained": str(Path(args.pretrained).expanduser().resolve()) if args.pretrained else None,
    }
    if args.model:
        model = Path(args.model).expanduser()
        overrides["model"] = str(model.resolve()) if args.model.endswith(".json") else args.model
    return TrainConfig(
        workspace=args.workspace,
        name=args.name,
        recipe=load_recipe(args.recipe),
        subset=args.subset,
        data=tuple(args.data),
        samples=args.samples,
        val_subset=args.val_subset,
        gpus=args.gpus,
        device=args.device,
        progress=not args.no_progress,
        overrides={key: value for key, value in overrides.items() if value is not None},
    )


def run(args: argparse.Namespace) -> int:
    from workbench.train.run import planned_command, run_training

    config = build_config(args)
    if args.print_command:
        print(planned_command(config))
        return 0
    print(run_training(config).describe())
    return 0
