"""Leak-safe training subsets: split by article, shuffled shards, caps per value, excluded concepts and eval sets."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from workbench.catalog.subset_split import near_duplicates
from workbench.cli import main

SPLITS = ("train", "val", "test")


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> tuple[Path, Path]:
    """A 40-article sample mirror (ground truth: 16 concepts) acquired and extracted: (mirror, workspace)."""
    base = tmp_path_factory.mktemp("split")
    mirror, ws = base / "mirror", base / "ws"
    assert main(["sample-mirror", str(mirror), "--articles", "40", "--seed", "5", "--no-progress"]) == 0
    assert main(["acquire", "--source", str(mirror), "--workspace", str(ws), "--no-progress"]) == 0
    assert main(["extract", "--workspace", str(ws), "--workers", "0", "--no-progress"]) == 0
    return mirror, ws


def _subset(ws: Path, *args: str) -> int:
    return main(["subset", "--workspace", str(ws), "--no-progress", *args])


def _rows(folder: Path) -> list[dict]:
    return pq.read_table(folder / "figures.parquet", columns=["key", "pmcid", "image_sha256"]).to_pylist()


def _keys(folder: Path) -> list[str]:
    return (folder / "keys.txt").read_text().split()


def test_split_by_article_shuffled_and_idempotent(sample, capsys) -> None:
    _, ws = sample
    args = ["--name", "s", "--split", "train=0.8,val=0.1,test=0.1", "--seed", "3", "--shard-samples", "20"]
    assert _subset(ws, *args) == 0
    root = ws / "subsets" / "s"
    articles = {split: {row["pmcid"] for row in _rows(root / split)} for split in SPLITS}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        assert not articles[a] & articles[b], f"an article is in {a} and {b}"
    keys = {split: _keys(root / split) for split in SPLITS}
    for split in SPLITS:  # the manifest keys are the keys written, and each split is a subset of its own
        manifest = json.loads((root / split / "manifest.json").read_text())
        assert manifest["split"] == split and manifest["samples"] == len(keys[split])
        assert sum(json.loads((root / split / "sizes.json").read_text()).values()) == len(keys[split])
    assert keys["train"] != sorted(keys["train"]), "samples are shuffled across the output shards"
    total = sum(len(k) for k in keys.values())
    summary = json.loads((root / "split.json").read_text())
    assert total + sum(summary["dropped"].values()) == len(_all_keys(ws))
    assert 0.6 < len(articles["train"]) / sum(len(a) for a in articles.values()) < 0.95
    capsys.readouterr()
    assert _subset(ws, *args) == 0  # the same command again: nothing copied
    assert capsys.readouterr().out.count("already up to date") == 3
    assert _subset(ws, *args[:-4], "--seed", "4", "--shard-samples", "20") == 2  # another split under that name


def _all_keys(ws: Path) -> list[str]:
    return pq.read_table(ws / "catalog" / "figures.parquet", columns=["key"]).column("key").to_pylist()


def test_balance_caps_and_exclusions(sample) -> None:
    mirror, ws = sample
    labels = mirror / "ground_truth.jsonl"
    assert _subset(ws, "--name", "ev", "--split", "train=0.7,test=0.3", "--seed", "1") == 0
    args = ["--name", "bal", "--balance", "concept", "--cap", "3", "--labels", str(labels)]
    assert _subset(ws, *args, "--exclude-concept", "histogram", "--exclude-eval", "ev/test") == 0
    truth = {}
    for line in labels.read_text().splitlines():
        row = json.loads(line)
        truth[(row["pmcid"], row["figure_id"])] = row["concept"]
    rows = pq.read_table(ws / "subsets" / "bal" / "figures.parquet").to_pylist()
    concepts = Counter(truth[(row["pmcid"], row["figure_id"])] for row in rows)
    assert concepts and max(concepts.values()) <= 3 and "histogram" not in concepts
    held = _rows(ws / "subsets" / "ev" / "test")
    assert not {row["key"] for row in rows} & {row["key"] for row in held}
    assert not {row["pmcid"] for row in rows} & {row["pmcid"] for row in held}
    assert not {row["image_sha256"] for row in rows} & {row["image_sha256"] for row in held}


def test_near_duplicates_band_search_is_exact() -> None:
    rng = np.random.default_rng(0)
    held = [f"{int(v):016x}" for v in rng.integers(0, 2**63, 50, dtype=np.int64)]
    near = f"{int(held[7], 16) ^ 0b101:016x}"  # 2 bits away
    far = f"{int(held[7], 16) ^ 0xF0F0:016x}"  # 8 bits away
    assert near_duplicates([near, far, None, held[3]], held).tolist() == [True, False, False, True]


def test_bad_input(sample, capsys) -> None:
    _, ws = sample
    assert _subset(ws, "--name", "x", "--split", "train=0.8,test=0.1") == 2
    assert "sum to 1" in capsys.readouterr().err
    assert _subset(ws, "--name", "x", "--balance", "concept") == 2
    assert "--cap" in capsys.readouterr().err
    assert _subset(ws, "--name", "x", "--exclude-eval", "nope/test") == 2
    assert "evaluation set nope/test" in capsys.readouterr().err
    assert _subset(ws, "--name", "x", "--split", "train=1", "--where", "caption_length < 0") == 2
    assert "selection is empty" in capsys.readouterr().err
