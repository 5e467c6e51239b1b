"""`workbench run --config FILE.yaml`: execute the stage notebooks with papermill."""

from __future__ import annotations

import argparse
import sys

NAME = "run"
HELP = "Execute the stage notebooks listed in a run config (YAML) with papermill into <workspace>/runs/<timestamp>/."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="run config YAML (see notebooks/demo.yaml)")
    parser.add_argument("--name", help="run folder name (default: UTC timestamp)")
    parser.add_argument("--log-output", action="store_true", help="stream the notebooks' output to the terminal")


def run(args: argparse.Namespace) -> int:
    from workbench.runner import load_run_config, run_stages

    config = load_run_config(args.config)
    print(f"workbench run: {len(config.stages)} stages into {config.workspace / 'runs'}", file=sys.stderr)
    run_dir, outcomes = run_stages(config, run_name=args.name, log_output=args.log_output)
    for outcome in outcomes:
        print(
            f"  {outcome.notebook:<24} {outcome.status:<7} {outcome.seconds:6.1f} s  {outcome.error}", file=sys.stderr
        )
    print(f"executed notebooks and summary: {run_dir}/summary.md")
    failed = [o for o in outcomes if o.status != "ok"]
    return 1 if failed or len(outcomes) < len(config.stages) else 0
