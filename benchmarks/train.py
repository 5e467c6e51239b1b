"""Training throughput: `workbench train` against `open_clip_train.main` called directly, same arguments, same data.

A sample mirror (`--articles`) is extracted and split by article; then, alternating (A B A B ...), each in a fresh
process, `workbench train --subset demo/train --recipe RECIPE` and a plain `python -c` calling
`open_clip_train.main(argv)` with the argv that run recorded in its params.json (only `--name` differs). Printed:
end-to-end samples/s (samples trained / wall seconds of the whole command, start-up included) and open_clip's own
steady-state samples/s (median of its log lines), for each, and the overhead of ours (the issue's bar: <= 3%).

    .venv/bin/python benchmarks/train.py                       # 60 articles, tiny-cpu, 3 epochs, 2 rounds
    .venv/bin/python benchmarks/train.py --workspace WS         # reuse a workspace with subset demo/{train,...}
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from workbench.train.metrics import parse_train_line  # noqa: E402

DIRECT = (
    "import sys, open_clip; from open_clip_train.main import main; "
    "[open_clip.add_model_config(p) for p in sys.argv[1:2] if p]; main(sys.argv[2:])"
)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "workbench.cli", *args]


def prepare(base: Path, articles: int) -> Path:
    ws = base / "ws"
    mirror = base / "mirror"
    for command in (
        _cli("sample-mirror", str(mirror), "--articles", str(articles), "--seed", "1", "--no-progress"),
        _cli("acquire", "--source", str(mirror), "--workspace", str(ws), "--no-progress"),
        _cli("extract", "--workspace", str(ws), "--workers", "0", "--no-progress"),
        _cli("subset", "--workspace", str(ws), "--name", "demo", "--split", "train=0.8,val=0.1,test=0.1",
             "--shard-samples", "100", "--no-progress"),
    ):  # fmt: skip
        subprocess.run(command, check=True, capture_output=True)
    return ws


def log_rate(log: Path) -> float:
    """Median samples/s open_clip logged after the first step of each epoch (warm-up excluded)."""
    rates = [r["samples_per_second"] for r in map(parse_train_line, log.read_text().splitlines()) if r]
    rates = [r for r in rates[1:]] or rates
    return statistics.median(rates) if rates else float("nan")


def run_ours(ws: Path, name: str, recipe: str, epochs: int) -> tuple[float, dict]:
    command = _cli("train", "--workspace", str(ws), "--subset", "demo/train", "--recipe", recipe, "--name", name,
                   "--epochs", str(epochs), "--no-progress")  # fmt: skip
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    seconds = time.perf_counter() - started
    return seconds, json.loads((ws / "training" / name / "params.json").read_text())


def run_direct(ws: Path, name: str, params: dict) -> float:
    argv = list(params["open_clip_argv"])
    argv[argv.index("--name") + 1] = name
    config = params["model"]["config"]
    config_path = str(ws / "training" / params["run"] / config) if config else ""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", DIRECT, config_path, *argv], check=True, capture_output=True)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, help="a workspace with subset demo/train (default: build one)")
    parser.add_argument("--articles", type=int, default=60)
    parser.add_argument("--recipe", default="tiny-cpu")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    os.environ["PYTHONPATH"] = str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        ws = args.workspace or prepare(Path(tmp), args.articles)
        stamp = time.strftime("%H%M%S")
        ours, direct = [], []
        for round_ in range(args.rounds):
            name = f"bench-{stamp}-{round_}"
            seconds, params = run_ours(ws, f"{name}-wb", args.recipe, args.epochs)
            samples = params["data"]["samples"] * args.epochs
            ours.append((samples / seconds, log_rate(ws / "training" / f"{name}-wb" / "out.log")))
            seconds = run_direct(ws, f"{name}-oc", params)
            direct.append((samples / seconds, log_rate(ws / "training" / f"{name}-oc" / "out.log")))
        end_ours, end_direct = (statistics.median(r[0] for r in runs) for runs in (ours, direct))
        log_ours, log_direct = (statistics.median(r[1] for r in runs) for runs in (ours, direct))
        print(f"training throughput, recipe {args.recipe}, {samples // args.epochs} samples x {args.epochs} epochs, "
              f"{args.rounds} alternating rounds, {os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}")  # fmt: skip
        print(
            f"  end to end:  workbench train {end_ours:.1f} samples/s, open_clip_train.main {end_direct:.1f} "
            f"samples/s, ratio {end_ours / end_direct:.3f} (overhead {100 * (1 - end_ours / end_direct):+.1f}%)"
        )
        print(
            f"  open_clip's log (steady state): {log_ours:.1f} vs {log_direct:.1f} samples/s, "
            f"ratio {log_ours / log_direct:.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
