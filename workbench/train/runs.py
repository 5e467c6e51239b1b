"""A training run's folder WS/training/RUN/ and what other stages read from it (its latest checkpoint, its model).

Layout (open_clip_train's own, with `--logs WS/training --name RUN`): `checkpoints/epoch_N.pt` and
`checkpoints/epoch_latest.pt`, `out.log`, `params.txt`; ours beside them: `params.json` (the resolved
parameters, data manifest ids, seed, code version), `metrics.jsonl`, and `ARCH.json` when the architecture
is a model-config file (a copy, named as params.json's `model.config` says: the run folder alone describes
the model).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import InputNotFound, UserError
from workbench.fileio import CorruptFile, read_json
from workbench.workspace import Workspace

RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
PARAMS = "params.json"
METRICS = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
LATEST = "epoch_latest.pt"
_EPOCH = re.compile(r"^epoch_(\d+)\.pt$")


def training_root(workspace: str | Path | Workspace) -> Path:
    """WS/training: one folder per run."""
    root = workspace.root if isinstance(workspace, Workspace) else Workspace.at(workspace).root
    return root / "training"


def check_run_name(run: str) -> str:
    if not isinstance(run, str) or not RUN_NAME.match(run) or ".." in run:
        raise UserError(f"bad run name {run!r}: letters, digits, '.', '_' and '-' only (at most 100)")
    return run


def run_folder(workspace: str | Path | Workspace, run: str) -> Path:
    return training_root(workspace) / check_run_name(run)


def checkpoint_epoch(path: Path) -> int | None:
    """N of a checkpoint named epoch_N.pt (None for other names)."""
    match = _EPOCH.match(path.name)
    return int(match.group(1)) if match else None


def latest_checkpoint(workspace: str | Path | Workspace, run: str) -> Path:
    """The run's most recent checkpoint: epoch_latest.pt when present, else the highest epoch_N.pt.

    Raises InputNotFound (exit 2, one line) when the run or its checkpoints do not exist.
    """
    folder = run_folder(workspace, run)
    if not folder.is_dir():
        known = sorted(p.name for p in training_root(workspace).glob("*") if p.is_dir())
        raise InputNotFound(f"training run {run!r} not found in {folder.parent} (runs: {', '.join(known) or 'none'})")
    checkpoints = folder / CHECKPOINTS
    latest = checkpoints / LATEST
    if latest.is_file():
        return latest
    numbered = [(checkpoint_epoch(p), p) for p in checkpoints.glob("epoch_*.pt") if checkpoint_epoch(p) is not None]
    if not numbered:
        raise InputNotFound(f"training run {run!r} has no checkpoint yet in {checkpoints}")
    return max(numbered)[1]


@dataclass(frozen=True)
class RunModel:
    """What loads a run's model: the open_clip architecture name, its model-config file (or None), the checkpoint."""

    run: str
    folder: Path
    architecture: str
    model_config: Path | None
    checkpoint: Path
    params: dict


def read_params(workspace: str | Path | Workspace, run: str) -> dict:
    path = run_folder(workspace, run) / PARAMS
    try:
        params = read_json(path)
    except FileNotFoundError:
        raise InputNotFound(f"training run {run!r} has no {PARAMS} ({path})") from None
    except CorruptFile as error:
        raise UserError(f"{path}: cannot be read ({error})") from None
    if not isinstance(params, dict) or not isinstance(params.get("model"), dict):
        raise UserError(f"{path}: not a workbench training params file")
    return params


def run_model(workspace: str | Path | Workspace, run: str) -> RunModel:
    """The model of run RUN at its latest checkpoint (for `run:RUN` model specs)."""
    checkpoint = latest_checkpoint(workspace, run)
    params = read_params(workspace, run)
    folder = run_folder(workspace, run)
    architecture = str(params["model"].get("architecture") or "")
    config_name = params["model"].get("config")
    config = folder / Path(str(config_name)).name if config_name else None
    if config is not None and not config.is_file():
        raise InputNotFound(f"training run {run!r}: its model config {config} is missing")
    return RunModel(run, folder, architecture, config, checkpoint, params)
