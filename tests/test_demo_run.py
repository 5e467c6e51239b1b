"""Every stage notebook, executed in order by the runner with tiny parameters, records sensible results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from workbench.cli import main


@pytest.mark.timeout(1800)  # eight stages, one of them training, on a busy shared CPU
def test_all_stage_notebooks_run_with_tiny_parameters(tmp_path: Path) -> None:
    demo = yaml.safe_load((REPO / "notebooks" / "demo.yaml").read_text())
    tiny = {
        "00_sample_mirror": {"articles": 12, "seed": 3},
        "01_acquire": {"source": "{workspace}/sample_mirror", "oa_service": ""},
        "02_extract": {"workers": 0, "shard_size": 20},
        "03_filter": {"license_groups": ["commercial"], "subset_name": "com", "search_query": "tomography"},
        "04_explore": {"model": "builtin", "embeddings": "builtin", "k": 4, "gallery_clusters": 2, "gallery_size": 4},
        "05_annotate": {"steps": [1, 2, 4]},
        "06_train": {
            "split_name": "sp",
            "split_fractions": [0.6, 0.2, 0.2],
            "run_name": "tiny",
            "epochs": 1,
            "batch_size": 8,
        },
        "07_evaluate": {"run": "tiny", "subset": "sp", "tasks": ["sample-concepts"], "bootstrap": 200},
        "08_search": {"embeddings": "tiny", "model": "run:tiny", "query": "microscopy", "k": 6},
    }
    assert [stage["notebook"] for stage in demo["stages"]] == list(tiny), "keep this test in step with demo.yaml"
    config = tmp_path / "tiny.yaml"
    workspace = tmp_path / "ws"
    stages = [{"notebook": name, "parameters": parameters} for name, parameters in tiny.items()]
    config.write_text(yaml.safe_dump({"workspace": str(workspace), "stages": stages}))

    assert main(["run", "--config", str(config), "--name", "tiny"]) == 0

    run_dir = workspace / "runs" / "tiny"
    results = {name: json.loads((run_dir / f"{name}.results.json").read_text()) for name in tiny}
    assert results["00_sample_mirror"]["articles"] == 12
    assert results["00_sample_mirror"]["graphics"] >= 12
    assert results["01_acquire"]["done"] == 12 and results["01_acquire"]["failed"] == 0
    extract = results["02_extract"]
    assert extract["pairs"] == results["00_sample_mirror"]["graphics"]  # one pair per figure graphic
    assert extract["samples_in_shards"] == extract["pairs"]
    assert extract["pairs_by_license_group"]["commercial"] == results["03_filter"]["figures_selected"]
    assert (workspace / "subsets" / "com" / "manifest.json").is_file()
    summary = json.loads((run_dir / "summary.json").read_text())
    explore = results["04_explore"]
    assert explore["points_in_map"] == explore["points_shown"] == extract["pairs"]  # every figure embedded and mapped
    assert explore["clusters"] == 4 and explore["neighbours_found"] > 0
    assert Path(explore["html_path"]).is_file()
    annotate = results["05_annotate"]
    assert [point["clusters"] for point in annotate["curve"]] == [1, 2, 4]
    assert [point["labelled"] for point in annotate["curve"]] == sorted(p["labelled"] for p in annotate["curve"])
    assert annotate["curve"][-1]["labelled"] == annotate["catalog_labelled"] == extract["pairs"]  # all 4 clusters
    assert annotate["cluster_labels"] == 4 and annotate["contested"] == 0
    train = results["06_train"]
    assert sum(train["splits"].values()) <= extract["pairs"] and train["splits"]["train"] > 0
    assert train["epochs"] == 1 and Path(train["checkpoint"]).is_file() and train["model_spec"] == "run:tiny"
    evaluation = results["07_evaluate"]
    assert evaluation and Path(run_dir / "07_evaluate.ipynb").is_file()
    search = results["08_search"]
    assert search["image_query_first"] and search["filter_holds"]
    assert [stage["status"] for stage in summary["stages"]] == ["ok"] * len(tiny)
    for name in tiny:
        assert (run_dir / f"{name}.ipynb").is_file()
