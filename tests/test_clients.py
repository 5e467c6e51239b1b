"""Real clients read the shards unchanged: webdataset, Hugging Face `datasets`, open_clip training."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from workbench.extract.pipeline import ExtractionConfig, run_extraction

REPO = Path(__file__).resolve().parent.parent
TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 8},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A sample mirror of 16 generated articles extracted into 3+ shards with the real extractor."""
    from workbench.mirror import build_sample_mirror

    root = tmp_path_factory.mktemp("clients")
    build_sample_mirror(root / "mirror", 16, seed=3, progress=False)
    report = run_extraction(ExtractionConfig(workspace=root, workers=0, shard_size=16, progress=False))
    assert not report.failed_units and report.pairs_written > 20
    return root


def _catalog(root: Path) -> dict[str, dict]:
    return {row["key"]: row for row in pq.read_table(root / "catalog" / "figures.parquet").to_pylist()}


def _shards(root: Path) -> list[str]:
    return sorted(str(p) for p in (root / "shards").glob("*.tar"))


def test_webdataset_reads_keys_images_captions_and_json(workspace):
    import webdataset

    catalog = _catalog(workspace)
    dataset = webdataset.WebDataset(_shards(workspace), shardshuffle=False).decode("pil")
    seen = []
    for sample in dataset:
        row = catalog[sample["__key__"]]
        assert isinstance(sample["jpg"], Image.Image) and sample["jpg"].size == (row["width"], row["height"])
        assert sample["txt"] == row["caption"]
        assert sample["json"]["key"] == sample["__key__"] and sample["json"]["article_citation"]  # from the file list
        seen.append(sample["__key__"])
    assert len(seen) == len(set(seen)) and set(seen) == set(catalog)


def test_huggingface_datasets_loads_the_shards(workspace, tmp_path):
    import datasets

    catalog = _catalog(workspace)
    dataset = datasets.load_dataset(
        "webdataset", data_files={"train": _shards(workspace)}, split="train", cache_dir=str(tmp_path / "hf")
    )
    assert dataset.num_rows == len(catalog)
    assert {"__key__", "jpg", "txt", "json"} <= set(dataset.column_names)
    row = dataset[0]
    assert row["__key__"] in catalog and isinstance(row["jpg"], Image.Image)
    assert row["txt"] == catalog[row["__key__"]]["caption"] and isinstance(row["json"], dict)
    assert sorted(dataset["__key__"]) == sorted(catalog)


def test_open_clip_trains_on_the_shards(workspace, tmp_path):
    config = tmp_path / "workbench-tiny-clip.json"
    config.write_text(json.dumps(TINY_CLIP))
    shards = sorted((workspace / "shards").glob("*.tar"))
    pattern = str(workspace / "shards" / f"{{{shards[0].stem}..{shards[-1].stem}}}.tar")
    script = (
        "import sys, open_clip; open_clip.add_model_config(sys.argv[1]); "
        "from open_clip_train.main import main; main(sys.argv[2:])"
    )
    arguments = [
        "--train-data", pattern, "--dataset-type", "webdataset",  # no --train-num-samples: sizes.json is used
        "--model", "workbench-tiny-clip", "--device", "cpu", "--precision", "fp32",
        "--batch-size", "4", "--epochs", "1", "--workers", "1", "--lr", "1e-3", "--warmup", "1",
        "--logs", str(tmp_path / "logs"), "--name", "tiny", "--save-frequency", "1", "--log-every-n-steps", "1",
        "--report-to", "", "--seed", "0",
    ]  # fmt: skip
    environment = os.environ | {"HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(
        [sys.executable, "-c", script, str(config), *arguments],
        cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    log = (tmp_path / "logs" / "tiny" / "out.log").read_text() if (tmp_path / "logs" / "tiny").exists() else ""
    assert result.returncode == 0, result.stderr[-3000:] + log[-2000:]
    assert "Loss:" in log, log[-2000:]
    assert (tmp_path / "logs" / "tiny" / "checkpoints" / "epoch_1.pt").exists()
