"""`workbench train`: resolve a `TrainConfig`, record it, and run `open_clip_train.main(argv)` (resuming).

WS/training/RUN/ receives open_clip_train's checkpoints and log plus params.json (resolved parameters, argv, data
manifest ids, seed, code version) and metrics.jsonl. A run killed at any point is continued by the same command
(open_clip_train's `--resume latest`); a finished run re-run trains nothing. A different configuration under an
existing RUN is refused (choose another name).
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import shutil
import subprocess
import time
from contextlib import nullcontext, redirect_stderr
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from workbench.errors import InputNotFound, UserError
from workbench.fileio import read_json, write_json_atomically
from workbench.locks import exclusive_lock
from workbench.resources import CHECKOUT
from workbench.train import metrics as run_metrics
from workbench.train.config import (
    TrainConfig,
    architecture,
    entry_argv,
    open_clip_argv,
    shell_line,
    torchrun_command,
)
from workbench.train.data import TrainData, input_data, subset_data
from workbench.train.runs import CHECKPOINTS, METRICS, PARAMS, check_run_name, latest_checkpoint, training_root
from workbench.workspace import Workspace

PARAMS_FORMAT = 1
_IDENTITY = ("recipe", "subset", "data", "samples", "val_subset", "gpus", "device")


@dataclass(frozen=True)
class TrainReport:
    run: str
    folder: Path
    epochs_before: int
    epochs: int
    samples_per_epoch: int
    seconds: float
    checkpoint: Path | None
    last_loss: float | None

    def describe(self) -> str:
        if self.epochs_before >= self.epochs:
            return f"{self.folder}: already trained ({self.epochs} epochs); latest checkpoint {self.checkpoint}"
        resumed = f", resumed after epoch {self.epochs_before}" if self.epochs_before else ""
        loss = f", last loss {self.last_loss:.4f}" if self.last_loss is not None else ""
        return (
            f"{self.folder}: trained epochs {self.epochs_before + 1}-{self.epochs} of {self.samples_per_epoch} "
            f"samples in {self.seconds:.1f} s{resumed}{loss}; latest checkpoint {self.checkpoint}"
        )


def code_version() -> dict[str, str | None]:
    """The workbench version and, in a git checkout, its commit."""
    try:
        version = importlib.metadata.version("biomedica-workbench")
    except importlib.metadata.PackageNotFoundError:
        version = None
    commit = None
    if (CHECKOUT / ".git").exists():
        try:
            found = subprocess.run(
                ["git", "-C", str(CHECKOUT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
            )
            commit = found.stdout.strip() or None
        except (OSError, subprocess.SubprocessError):
            commit = None
    return {"workbench": version, "git_commit": commit}


def check_model(config: TrainConfig) -> None:
    """Unknown architecture, missing model config or missing starting checkpoint: one line, before anything runs."""
    import open_clip

    recipe = config.resolved
    if recipe.model.endswith(".json"):
        if not Path(recipe.model).is_file():
            raise InputNotFound(f"model config {recipe.model} not found")
        open_clip.add_model_config(recipe.model)
    elif recipe.model not in open_clip.list_models():
        raise UserError(f"unknown open_clip architecture {recipe.model!r} (see open_clip.list_models())")
    if recipe.pretrained and not Path(recipe.pretrained).expanduser().is_file():
        raise InputNotFound(f"checkpoint {recipe.pretrained} not found (--pretrained / the recipe's `pretrained`)")


def resolve_data(config: TrainConfig, workspace: Workspace) -> tuple[TrainData, TrainData | None]:
    data = subset_data(workspace, config.subset) if config.subset else input_data(list(config.data), config.samples)
    val = subset_data(workspace, config.val_subset) if config.val_subset else None
    return data, val


def _checkpoint_epoch(folder: Path) -> int:
    """The epoch the run will resume after (0: none yet)."""
    import torch

    latest = folder / CHECKPOINTS / "epoch_latest.pt"
    if not latest.is_file():
        return 0
    return int(torch.load(latest, map_location="cpu", weights_only=False).get("epoch", 0))


def _check_same_run(folder: Path, params: dict[str, Any]) -> None:
    path = folder / PARAMS
    if not path.is_file():
        return
    old = read_json(path)
    before = {key: (old.get("config") or {}).get(key) for key in _IDENTITY}
    now = {key: params["config"].get(key) for key in _IDENTITY}
    if before["recipe"] and now["recipe"]:  # more epochs later is a continuation, not another run
        before["recipe"] = {k: v for k, v in before["recipe"].items() if k != "epochs"}
        now["recipe"] = {k: v for k, v in now["recipe"].items() if k != "epochs"}
    if before != now:
        changed = ", ".join(key for key in _IDENTITY if before[key] != now[key])
        raise UserError(f"training run {folder.name} exists with other parameters ({changed}): choose another --name")


def _params(config: TrainConfig, data: TrainData, val: TrainData | None, argv: list[str], command: Any) -> dict:
    return {
        "format": PARAMS_FORMAT,
        "run": config.name,
        "config": config.to_dict(),
        "model": {
            "architecture": architecture(config.resolved),
            "config": Path(config.resolved.model).name if config.resolved.model.endswith(".json") else None,
            "pretrained": config.resolved.pretrained,
        },
        "data": {
            "train_data": data.train_data,
            "samples": data.samples,
            "shards": data.shards,
            "manifests": list(data.manifests),
            "val": None if val is None else {"samples": val.samples, "manifests": list(val.manifests)},
        },
        "seed": config.resolved.seed,
        "open_clip_argv": argv,
        "command": command,
        "code_version": code_version(),
        "versions": _versions(),
    }


def _versions() -> dict[str, str]:
    found = {}
    for name in ("open_clip_torch", "torch", "webdataset"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def _plan(config: TrainConfig) -> tuple[Workspace, TrainData, TrainData | None]:
    if not Path(config.workspace).is_dir():
        raise InputNotFound(f"workspace {config.workspace} does not exist")
    workspace = Workspace.at(config.workspace)
    check_run_name(config.name)
    check_model(config)
    data, val = resolve_data(config, workspace)
    batch = config.resolved.batch_size * max(config.gpus, 1)
    if data.samples < batch:  # open_clip_train drops partial batches: it would loop forever on no batch at all
        raise UserError(
            f"the training data holds {data.samples} samples, fewer than one batch ({batch}): lower --batch-size"
        )
    return workspace, data, val


def _commands(config: TrainConfig, workspace: Workspace, data: TrainData, val: TrainData | None) -> tuple:
    """(model config copy, open_clip argv, torchrun command or None)."""
    recipe = config.resolved
    logs = training_root(workspace)
    folder = logs / config.name
    model_config = str(folder / Path(recipe.model).name) if recipe.model.endswith(".json") else None
    argv = open_clip_argv(config, data.train_data, data.samples, logs, (val.train_data, val.samples) if val else None)
    command = torchrun_command(config.gpus, model_config, argv) if config.gpus else None
    return model_config, argv, command


def planned_command(config: TrainConfig) -> str:
    """The exact command line the run executes (torchrun with --gpus N, else `python -m workbench.train.entry`)."""
    import sys

    workspace, data, val = _plan(config)
    model_config, argv, command = _commands(config, workspace, data, val)
    entry = entry_argv(model_config, argv, config.resolved.threads)
    return shell_line(command or [sys.executable, "-m", "workbench.train.entry", *entry])


def run_training(config: TrainConfig) -> TrainReport:
    """Train (or continue) run `config.name`; raise UserError before writing anything when the input is bad."""
    from workbench.train.entry import run as run_entry

    workspace, data, val = _plan(config)
    folder = training_root(workspace) / config.name
    recipe = config.resolved
    with exclusive_lock(workspace.locks / f"train-{config.name}.lock", f"another `workbench train` runs {folder}"):
        model_config, argv, command = _commands(config, workspace, data, val)
        params = _params(config, data, val, argv, shell_line(command) if command else None)
        _check_same_run(folder, params)
        folder.mkdir(parents=True, exist_ok=True)
        if model_config:
            shutil.copyfile(recipe.model, model_config)
        write_json_atomically(params, folder / PARAMS)
        before = _checkpoint_epoch(folder)
        report = lambda seconds, loss: TrainReport(  # noqa: E731
            config.name, folder, before, recipe.epochs, data.samples, seconds, _latest(workspace, config.name), loss
        )
        if before >= recipe.epochs:
            return report(0.0, None)
        metrics_path = folder / METRICS
        run_metrics.keep_before(metrics_path, before)
        results = folder / CHECKPOINTS / "results.jsonl"
        seen = len(results.read_text().splitlines()) if results.is_file() else 0
        started = time.perf_counter()
        last: dict[str, Any] = {}
        total = recipe.epochs * data.samples
        with tqdm(total=total, initial=before * data.samples, unit="sample", disable=not config.progress) as bar:

            def on_record(record: dict[str, Any]) -> None:
                last.update(record)
                bar.n = min(total, record["epoch"] * data.samples + record["samples"])
                bar.set_postfix(epoch=record["epoch"], loss=record.get("loss"))

            follower = run_metrics.LogFollower(folder / "out.log", metrics_path, on_record)
            follower.start()
            try:
                if command:
                    code = subprocess.run(command, check=False).returncode
                else:
                    code = _in_process(run_entry, entry_argv(model_config, argv, recipe.threads), config.progress)
            finally:
                follower.stop()
                run_metrics.add_val_results(results, metrics_path, seen)
        if code not in (0, None):
            raise RuntimeError(f"open_clip_train exited with status {code}; see {folder / 'out.log'}")
        return report(time.perf_counter() - started, last.get("loss"))


def _in_process(run_entry: Any, argv: list[str], quiet: bool) -> int:
    """open_clip_train.main in this process; with a progress bar its console log is silenced (out.log keeps it)
    and the log handlers it adds are removed afterwards (a notebook may train again)."""
    before = list(logging.root.handlers)
    try:
        with open(os.devnull, "w") as sink, redirect_stderr(sink) if quiet else nullcontext():
            return run_entry(argv)
    finally:
        for handler in [h for h in logging.root.handlers if h not in before]:
            logging.root.removeHandler(handler)
            handler.close()


def _latest(workspace: Workspace, run: str) -> Path | None:
    try:
        return latest_checkpoint(workspace, run)
    except InputNotFound:
        return None
