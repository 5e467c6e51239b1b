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
