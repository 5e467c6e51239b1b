"""`workbench evaluate --task sample-concepts`: the workspace's test split, labels from the sample mirror's truth."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from evaluate_fixture import tiny_model
from explore_fixture import build_sample_workspace

from workbench.cli import main
from workbench.evaluate.report import leaderboard_rows, saved_results
from workbench.evaluate.sources import ground_truth_labels


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("evalws")
    root = build_sample_workspace(folder, articles=10, seed=3)
    test = root / "subsets" / "demo" / "test"
    test.mkdir(parents=True)
    for shard in sorted((root / "shards").glob("*.tar")):  # the whole extraction stands in for a held-out split
        shutil.copy(shard, test / shard.name)
    return root


def test_sample_concepts(workspace: Path, capsys: pytest.CaptureFixture) -> None:
    mirror = workspace.parent / "mirror" / "ground_truth.jsonl"
    models = [tiny_model(workspace.parent / "models", seed) for seed in (0, 1)]
    argv = ["evaluate", "--workspace", str(workspace), "--task", "sample-concepts", "--labels", str(mirror)]
    assert main([*argv, "--model", models[0], "--json", "--no-progress"]) == 0
    results = json.loads(capsys.readouterr().out)
    truth = ground_truth_labels(mirror, "concept")
    zs = results["zeroshot"]
    assert len(zs["classes"]) == 16 and zs["chance"]["top1"] == pytest.approx(1 / 16)
    assert zs["n"] == results["data"]["decoded"] - zs["unlabelled"] and zs["n"] > 0
    assert zs["n"] <= len(truth)
    assert results["retrieval"]["n_images"] == results["data"]["decoded"]
    assert results["task"]["name"] == "sample-concepts" and results["task"]["data_format"] == "workspace-split"
    # two models: a leaderboard of both, saved under WS/evaluations/sample-concepts/
    assert main([*argv, "--model", models[0], "--model", models[1], "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert out.count("zero-shot (16 classes") == 2 and "chance top-1 6.2%" in out
    rows = leaderboard_rows(saved_results(workspace, "sample-concepts"))
    assert len(rows) == 2 and {r["chance_top1"] for r in rows} == {1 / 16}


def test_no_ground_truth(workspace: Path, capsys: pytest.CaptureFixture) -> None:
    model = tiny_model(workspace.parent / "models", 0)
    argv = ["evaluate", "--workspace", str(workspace), "--task", "sample-concepts", "--model", model]
    assert main([*argv, "--no-progress"]) == 2  # the task's default truth, WS/sample_mirror/, is not there
    assert "ground truth" in capsys.readouterr().err
    assert main([*argv, "--subset", "nope", "--no-progress"]) == 2
    assert "split 'test' of subset 'nope' not found" in capsys.readouterr().err


def _fake_run(workspace: Path, run: str) -> None:
    """A training run folder as `workbench train` leaves it (params.json, model config, latest checkpoint), made
    from a random tiny model instead of training (tests/test_train*.py train for real)."""
    spec = tiny_model(workspace.parent / "models", seed=7)
    _, config, checkpoint = spec.split(":")
    folder = workspace / "training" / run
    (folder / "checkpoints").mkdir(parents=True, exist_ok=True)
    shutil.copy(config, folder / Path(config).name)
    shutil.copy(checkpoint, folder / "checkpoints" / "epoch_1.pt")
    params = {"run": run, "seed": 3, "model": {"architecture": "", "config": Path(config).name, "pretrained": None}}
    (folder / "params.json").write_text(json.dumps(params))


def test_notebook_07_evaluates_run_and_init(workspace: Path, tmp_path: Path) -> None:
    import papermill
    from conftest import REPO

    _fake_run(workspace, "fake")
    output = tmp_path / "07.ipynb"
    parameters = {
        "workspace": str(workspace),
        "run": "fake",
        "labels": str(workspace.parent / "mirror" / "ground_truth.jsonl"),
        "bootstrap": 200,
        "results_path": str(tmp_path / "results.json"),
    }
    papermill.execute_notebook(str(REPO / "notebooks" / "07_evaluate.ipynb"), str(output), parameters=parameters)
    recorded = json.loads((tmp_path / "results.json").read_text())
    assert set(recorded["top1"]) == {"sample-concepts run:fake", "sample-concepts init:fake"}
    assert recorded["chance_top1"] == {"sample-concepts": 1 / 16}
    init = workspace / "evaluations" / "init" / "fake-seed3.pt"
    assert init.is_file()  # the run's seeded initialisation, saved once
    saved = {p.name for p in (workspace / "evaluations" / "sample-concepts").glob("*.json")}
    assert {"run-fake.json", "init-fake.json"} <= saved
