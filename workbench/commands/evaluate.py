"""`workbench evaluate`: zero-shot classification and image<->text retrieval of contrastive models on a task.

Exit status: 0 done; 2 bad input (unknown task or model spec, missing checkpoint, a class without prompts, data
that is missing or empty). Images that fail to decode are counted and reported; the run goes on.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from workbench.commands._argtypes import non_negative_int, positive_int
from workbench.evaluate.report import leaderboard_text, lines
from workbench.evaluate.run import EvalConfig, evaluate

NAME = "evaluate"
HELP = "Evaluate contrastive models: zero-shot classification and image-text retrieval with bootstrap 95% CIs."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "SPEC: open_clip:ARCH_OR_CONFIG.json:CHECKPOINT (or hf-hub:/tag as for workbench embed) or run:RUN (a "
        "training run's latest checkpoint in WS/training/RUN). TASK: a name under data_catalog/eval/ (sample-concepts: "
        "16-way concept zero-shot and caption retrieval on the workspace's test split) or a task YAML path. Results: "
        "WS/evaluations/TASK/MODEL.json (metrics with 95% CIs, model card, task version, seed). Repeat --model to "
        "compare models (a leaderboard is printed). exit status: 0 done; 2 bad input"
    )
    parser.add_argument("--workspace", type=Path, help="workspace folder (needed by run:RUN and workspace tasks)")
    parser.add_argument("--model", required=True, action="append", metavar="SPEC", help="model spec (repeatable)")
    parser.add_argument("--task", required=True, action="append", metavar="TASK", help="task name or YAML (repeatable)")
    parser.add_argument("--subset", metavar="NAME", help="the split subset WS/subsets/NAME (default: the only one)")
    parser.add_argument(
        "--labels",
        type=Path,
        metavar="FILE",
        help="ground truth JSONL for a workspace-split task (default: the task's)",
    )
    parser.add_argument("--seed", type=non_negative_int, metavar="S", help="bootstrap seed (default: the task's or 0)")
    parser.add_argument("--bootstrap", type=positive_int, metavar="N", help="bootstrap resamples (default 1000)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the model runs (default cpu)")
    parser.add_argument("--batch-size", type=positive_int, default=64, metavar="N", help="images per batch")
    parser.add_argument(
        "--num-workers", type=non_negative_int, default=0, metavar="N", help="image decoding processes (default 0)"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON (a list with several runs)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    all_results = []
    for task in args.task:
        for model in args.model:
            config = EvalConfig(
                model=model,
                task=task,
                workspace=args.workspace,
                subset=args.subset,
                labels=args.labels,
                device=args.device,
                batch_size=args.batch_size,
                num_workers=args.num_workers,
                seed=args.seed,
                resamples=args.bootstrap,
                progress=not args.no_progress,
            )
            results = evaluate(config)
            all_results.append(results)
            if not args.json:
                print("\n".join(lines(results)), flush=True)
    if args.json:
        json.dump(all_results[0] if len(all_results) == 1 else all_results, sys.stdout, indent=1)
        print()
    elif len(all_results) > 1:
        print("\n".join(leaderboard_text(all_results)))
    return 0
