"""`run:RUN` model specs: a training run's latest checkpoint, loaded like any open_clip checkpoint (tiny, random)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from workbench.embed.spec import parse_model_spec
from workbench.errors import InputNotFound, UserError
from workbench.resources import DATA_CATALOG
from workbench.train.runs import latest_checkpoint, run_model

torch = pytest.importorskip("torch")
open_clip = pytest.importorskip("open_clip")

CONFIG = DATA_CATALOG / "training" / "tiny-clip.json"


def fake_run(workspace: Path, run: str, epochs: tuple[int, ...], latest: bool) -> Path:
    """A run folder as `workbench train` leaves it: params.json, the model config copy, checkpoints."""
    folder = workspace / "training" / run
    (folder / "checkpoints").mkdir(parents=True)
    shutil.copy(CONFIG, folder / CONFIG.name)
    (folder / "params.json").write_text(json.dumps({"model": {"architecture": "tiny-clip", "config": CONFIG.name}}))
    open_clip.add_model_config(CONFIG)
    torch.manual_seed(0)
    model = open_clip.create_model("tiny-clip")
    for epoch in epochs:
        torch.save({"epoch": epoch, "state_dict": model.state_dict()}, folder / "checkpoints" / f"epoch_{epoch}.pt")
    if latest:
        torch.save({"epoch": max(epochs), "state_dict": model.state_dict()}, folder / "checkpoints" / "epoch_latest.pt")
    return folder


def test_latest_checkpoint_prefers_epoch_latest_then_highest_epoch(tmp_path: Path) -> None:
    fake_run(tmp_path, "a", (1, 2, 10), latest=False)
    assert latest_checkpoint(tmp_path, "a").name == "epoch_10.pt"
    fake_run(tmp_path, "b", (1,), latest=True)
    assert latest_checkpoint(tmp_path, "b").name == "epoch_latest.pt"


def test_run_spec_loads_the_trained_model(tmp_path: Path) -> None:
    from workbench.embed.models import load_embedder

    folder = fake_run(tmp_path, "r1", (1, 2), latest=False)
    spec = parse_model_spec("run:r1", tmp_path)
    assert spec.run == "r1" and spec.family == "open_clip"
    assert spec.weights_path == str((folder / "checkpoints" / "epoch_2.pt").resolve())
    again = parse_model_spec(spec.text)  # the canonical text re-parses without the workspace (Dask workers)
    assert again.weights_path == spec.weights_path
    embedder = load_embedder(spec)
    assert embedder.dims == {"image": 128, "text": 128}
    model = run_model(tmp_path, "r1")
    assert model.architecture == "tiny-clip" and model.model_config == folder / CONFIG.name


def test_run_spec_bad_input(tmp_path: Path) -> None:
    with pytest.raises(InputNotFound, match="training run 'nope' not found"):
        parse_model_spec("run:nope", tmp_path)
    with pytest.raises(UserError, match="needs a workspace"):
        parse_model_spec("run:x")
    with pytest.raises(UserError, match="bad run name"):
        parse_model_spec("run:../x", tmp_path)
    (tmp_path / "training" / "empty" / "checkpoints").mkdir(parents=True)
    with pytest.raises(InputNotFound, match="no checkpoint yet"):
        parse_model_spec("run:empty", tmp_path)
