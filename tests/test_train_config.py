"""Recipes, TrainConfig -> open_clip_train argv, and metrics parsing (no training: fast)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workbench.errors import UserError
from workbench.train.config import TrainConfig, list_recipes, load_recipe, open_clip_argv
from workbench.train.metrics import keep_before, parse_train_line

LINE = (
    "2026-11-30,18:21:53 | INFO | Train Epoch: 1 [ 96/448 (21%)] Data (t): 0.017 Batch (t): 8.029, 6.16842/s, "
    "6.16842/s/gpu LR: 0.000750 Logit Scale: 14.229 Contrastive_loss: 2.6934 (2.6528) Loss: 2.6934 (2.6528)"
)


def test_shipped_recipes_load() -> None:
    assert {"tiny-cpu", "bmca-clip-vit-l-14"} <= set(list_recipes())
    tiny = load_recipe("tiny-cpu")
    assert tiny.model.endswith("tiny-clip.json") and Path(tiny.model).is_file()
    bmca = load_recipe("bmca-clip-vit-l-14")
    assert bmca.model == "ViT-L-14" and bmca.precision == "amp_bf16" and "--grad-checkpointing" in bmca.extra_args
    assert "2501.07171" in bmca.source


def test_argv_applies_overrides_and_always_resumes(tmp_path: Path) -> None:
    config = TrainConfig(
        workspace=tmp_path,
        name="r",
        recipe=load_recipe("bmca-clip-vit-l-14"),
        data=("/d/{0..9}.tar",),
        samples=1000,
        overrides={"epochs": 2, "pretrained": "/m/vit-l-14.bin"},
    )
    argv = open_clip_argv(config, "/d/{0..9}.tar", 1000, tmp_path / "training", None)
    pairs = dict(zip(argv[::1], argv[1:], strict=False))
    assert pairs["--epochs"] == "2" and pairs["--pretrained"] == "/m/vit-l-14.bin" and pairs["--model"] == "ViT-L-14"
    assert (
        pairs["--resume"] == "latest"
        and "--save-most-recent" in argv
        and argv[-3:] == list(load_recipe("bmca-clip-vit-l-14").extra_args)
    )


def test_bad_config(tmp_path: Path) -> None:
    recipe = load_recipe("tiny-cpu")
    with pytest.raises(UserError, match="exactly one of --subset"):
        TrainConfig(workspace=tmp_path, name="r", recipe=recipe)
    with pytest.raises(UserError, match="precision"):
        TrainConfig(workspace=tmp_path, name="r", recipe=recipe, subset="s", overrides={"precision": "fp8"})
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: ViT-B-32\nlearning_rate: 1\n")
    with pytest.raises(UserError, match="unknown key"):
        load_recipe(str(bad))


def test_metrics_parsing_and_trimming_on_resume(tmp_path: Path) -> None:
    record = parse_train_line(LINE)
    assert record == {
        "kind": "train", "epoch": 1, "samples": 96, "samples_per_epoch": 448, "samples_per_second": 6.16842,
        "batch_seconds": 8.029, "lr": 0.00075, "logit_scale": 14.229, "contrastive_loss": 2.6934,
        "contrastive_loss_avg": 2.6528, "loss": 2.6934, "loss_avg": 2.6528,
    }  # fmt: skip
    assert parse_train_line("2026 | INFO | Start epoch 1") is None
    path = tmp_path / "metrics.jsonl"
    rows = [{"kind": "train", "epoch": e} for e in (0, 0, 1, 2)] + [{"kind": "val", "epoch": e} for e in (1, 2, 3)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"cut by a ki')
    keep_before(path, 2)
    kept = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["kind"], r["epoch"]) for r in kept] == [("train", 0), ("train", 0), ("train", 1), ("val", 1), ("val", 2)]
