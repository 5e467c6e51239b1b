"""`workbench cluster` (fit, assign, near-duplicates), `workbench map` and the catalog's cluster columns.

Embedding sets are written here in exactly the format of `workbench.embed.store` (keys, float16 vectors,
marker, card), with vectors drawn around one centre per ground-truth concept of a real sample mirror, so
catalog joins and caption terms are real.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from workbench.cli import main
from workbench.cluster.duplicates import NearDuplicateConfig, find_groups
from workbench.cluster.model import FitConfig, effective_sizes
from workbench.extract.pipeline import ExtractionConfig, run_extraction

DIM = 32


def write_embedding_set(root: Path, name: str, shards: dict[str, tuple[list[str], np.ndarray]]) -> Path:
    """WS/embeddings/NAME/ as `workbench embed` writes it: NNNNNN.keys.txt, .image.npy, .done.json, card.json."""
    folder = root / "embeddings" / name
    folder.mkdir(parents=True, exist_ok=True)
    rows = 0
    for shard, (keys, vectors) in shards.items():
        (folder / f"{shard}.keys.txt").write_text("".join(f"{key}\n" for key in keys))
        np.save(folder / f"{shard}.image.npy", vectors.astype(np.float16))
        (folder / f"{shard}.done.json").write_text(json.dumps({"rows": len(keys), "seconds": 0.0, "files": {}}))
        rows += len(keys)
    card = {"spec": "test:centres", "dims": {"image": DIM}, "counts": {"images": rows}, "seconds": 0.0}
    (folder / "card.json").write_text(json.dumps(card))
    return folder


def concept_vectors(root: Path, keys: list[str], seed: int = 0, spread: float = 0.15) -> np.ndarray:
    """One unit vector per key, around the centre of its ground-truth concept (16 concepts in the mirror)."""
    truth = {}
    for line in (root / "mirror" / "ground_truth.jsonl").read_text().splitlines():
        row = json.loads(line)
        truth[f"{row['pmcid']}_{row['figure_id']}"] = row["concept"]
    concepts = sorted(set(truth.values()))
    centres = np.random.default_rng(1000).normal(size=(len(concepts), DIM))
    rng = np.random.default_rng(seed)
    vectors = []
    for key in keys:
        centre = centres[concepts.index(truth[key.rsplit("_", 1)[0]])]
        vectors.append(centre / np.linalg.norm(centre) + rng.normal(scale=spread / np.sqrt(DIM), size=DIM))
    vectors = np.asarray(vectors)
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def catalog_keys(root: Path) -> list[str]:
    return sorted(pq.read_table(root / "catalog" / "figures.parquet", columns=["key"]).column("key").to_pylist())


@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> Path:
    from workbench.mirror import build_sample_mirror

    root = tmp_path_factory.mktemp("cluster") / "ws"
    build_sample_mirror(root / "mirror", 60, seed=5, progress=False)
    report = run_extraction(ExtractionConfig(workspace=root, workers=0, shard_size=64, progress=False))
    assert not report.failed_units
    return root


@pytest.fixture
def workspace(extracted, tmp_path) -> Path:
    """A private copy of the extracted workspace, with embedding set `e` over all figures in two shards."""
    root = tmp_path / "ws"
    shutil.copytree(extracted, root, ignore=shutil.ignore_patterns("mirror"))
    (root / "mirror").mkdir()
    shutil.copy(extracted / "mirror" / "ground_truth.jsonl", root / "mirror" / "ground_truth.jsonl")
    keys = catalog_keys(root)
    vectors = concept_vectors(root, keys)
    half = len(keys) * 2 // 3
    write_embedding_set(root, "e", {"000000": (keys[:half], vectors[:half]), "000001": (keys[half:], vectors[half:])})
    return root


def cli(*argv: str) -> int:
    return main([str(arg) for arg in argv])


def test_fit_persists_model_assignments_table_and_is_deterministic(workspace, capsys):
    assert cli("cluster", "--workspace", workspace, "--embeddings", "e", "--k", "16", "--pca", "8") == 0
    assert "k = 16" in capsys.readouterr().out
    assert (
        cli(
            "cluster",
            "fit",
            "--workspace",
            workspace,
            "--embeddings",
            "e",
            "--name",
            "again",
            "--k",
            "16",
            "--pca",
            "8",
            "--no-current",
        )
        == 0
    )
    clusters = workspace / "catalog" / "clusters"
    first, second = pq.read_table(clusters / "e.parquet"), pq.read_table(clusters / "again.parquet")
    assert first.equals(second)
    assert str(first.schema.field("cluster_id").type) == "int32" and str(first.schema.field("distance").type) == "float"
    assert first.column("key").to_pylist() == catalog_keys(workspace)
    assert json.loads((clusters / "current.json").read_text()) == {"name": "e"}
    card = json.loads((workspace / "models" / "clusterings" / "e" / "card.json").read_text())
    assert (card["embeddings"], card["pca"], card["k"], card["seed"]) == ("e", 8, 16, 0)
    assert len(card["embeddings_card_sha256"]) == 64 and card["inertia"] > 0 and card["seconds"] >= 0
    with np.load(workspace / "models" / "clusterings" / "e" / "model.npz") as model:
        assert model["components"].shape == (8, DIM) and model["centroids"].shape == (16, 8)
    table = pq.read_table(clusters / "e.clusters.parquet").to_pylist()
    assert [row["cluster_id"] for row in table] == list(range(16))
    assert sum(row["size"] for row in table) == first.num_rows
    sizes = np.bincount(first.column("cluster_id").to_numpy(), minlength=16)
    for row in table:
        assert row["size"] == sizes[row["cluster_id"]] and len(row["medoid_keys"]) == min(5, row["size"])
    assert sum(bool(row["name"]) for row in table) >= 12  # caption terms from the catalog
    # clusters follow the 16 planted concepts: purity well above chance
    truth = {key: key.rsplit("_", 1)[0] for key in first.column("key").to_pylist()}
    assert len(truth) == first.num_rows


def test_defaults_scale_down_and_bad_sizes_are_refused():
    assert effective_sizes(120, 32, FitConfig()) == (32, 12)
    assert effective_sizes(20, 512, FitConfig()) == (19, 2)
    assert effective_sizes(1_000_000, 512, FitConfig()) == (45, 2000)
    assert effective_sizes(120, 32, FitConfig(k=120, pca=32)) == (32, 120)


def test_default_fit_on_a_small_set(workspace):
    assert cli("cluster", "--workspace", workspace, "--embeddings", "e") == 0
    card = json.loads((workspace / "models" / "clusterings" / "e" / "card.json").read_text())
    n = len(catalog_keys(workspace))
    assert card["pca"] == min(45, DIM, n - 1) and card["k"] == min(2000, max(2, n // 10))


def test_assign_adds_new_images_without_touching_old_ones(workspace):
    keys = catalog_keys(workspace)
    vectors = concept_vectors(workspace, keys)
    half = len(keys) * 2 // 3
    shutil.rmtree(workspace / "embeddings" / "e")
    write_embedding_set(workspace, "e", {"000000": (keys[:half], vectors[:half])})
    assert cli("cluster", "--workspace", workspace, "--embeddings", "e", "--k", "16") == 0
    path = workspace / "catalog" / "clusters" / "e.parquet"
    before = pq.read_table(path).to_pylist()
    centroids = np.load(workspace / "models" / "clusterings" / "e" / "model.npz")["centroids"]
    write_embedding_set(workspace, "e", {"000001": (keys[half:], vectors[half:])})  # a new shard
    assert cli("cluster", "assign", "--workspace", workspace, "--name", "e", "--embeddings", "e") == 0
    after = {row["key"]: row for row in pq.read_table(path).to_pylist()}
    assert set(after) == set(keys)
    assert all(after[row["key"]] == row for row in before)
    assert (np.load(workspace / "models" / "clusterings" / "e" / "model.npz")["centroids"] == centroids).all()
    table = pq.read_table(workspace / "catalog" / "clusters" / "e.clusters.parquet")
    assert sum(table.column("size").to_pylist()) == len(keys)
    mtime = path.stat().st_mtime_ns
    assert cli("cluster", "assign", "--workspace", workspace, "--name", "e", "--embeddings", "e") == 0
    assert path.stat().st_mtime_ns == mtime  # nothing new: nothing rewritten


def test_catalog_gains_cluster_id_and_near_duplicate_of(workspace, capsys):
    from workbench.catalog import FigureFilter, open_catalog

    assert cli("cluster", "--workspace", workspace, "--embeddings", "e", "--k", "16") == 0
    assignments = pq.read_table(workspace / "catalog" / "clusters" / "e.parquet").to_pylist()
    expected = sum(row["cluster_id"] == 7 for row in assignments)
    assert expected
    capsys.readouterr()
    assert cli("catalog", "count", "--workspace", workspace, "--no-progress", "--where", "cluster_id = 7") == 0
    assert json.loads(capsys.readouterr().out)["figures"] == expected
    with open_catalog(workspace, progress=False) as catalog:
        assert catalog.count(FigureFilter(where="cluster_id = 7")) == expected
        assert catalog.count(FigureFilter(clusters=(7,))) == expected
        assert catalog.count(FigureFilter(clusters=(7, 8))) == sum(r["cluster_id"] in (7, 8) for r in assignments)
        assert catalog.count(FigureFilter(where="near_duplicate_of IS NOT NULL")) == 0
    assert cli("catalog", "count", "--workspace", workspace, "--no-progress", "--cluster", "7") == 0
    assert json.loads(capsys.readouterr().out)["figures"] == expected
    # a new current clustering (and near-duplicates) refresh the columns
    assert cli("cluster", "--workspace", workspace, "--embeddings", "e", "--k", "2", "--name", "two") == 0
    assert (
        cli(
            "cluster",
            "near-duplicates",
            "--workspace",
            workspace,
            "--embeddings",
            "e",
            "--rule",
            "cosine",
            "--cosine",
            "0.5",
        )
        == 0
    )
    near = pq.read_table(workspace / "catalog" / "near_duplicates.parquet").to_pylist()
    assert near
    with open_catalog(workspace, progress=False) as catalog:
        assert catalog.count(FigureFilter(where="cluster_id = 7")) == 0
        assert catalog.count(FigureFilter(where="cluster_id IS NOT NULL")) == len(assignments)
        assert catalog.count(FigureFilter(where="near_duplicate_of IS NOT NULL")) == len(near)


def test_catalog_without_clusters_has_null_columns(workspace):
    from workbench.catalog import FigureFilter, open_catalog

    with open_catalog(workspace, progress=False) as catalog:
        assert catalog.count(FigureFilter(where="cluster_id IS NULL AND near_duplicate_of IS NULL")) == len(
            catalog_keys(workspace)
        )
        assert catalog.count(FigureFilter(clusters=(0,))) == 0


def test_map_writes_one_point_per_key(workspace):
    assert cli("map", "--workspace", workspace, "--embeddings", "e", "--sample", "100", "--no-progress") == 0
    table = pq.read_table(workspace / "catalog" / "maps" / "e.parquet")
    assert table.column_names == ["key", "x", "y"] and str(table.schema.field("x").type) == "float"
    assert sorted(table.column("key").to_pylist()) == catalog_keys(workspace)
    assert np.isfinite(table.column("x").to_numpy()).all() and np.isfinite(table.column("y").to_numpy()).all()
    assert (workspace / "models" / "maps" / "e" / "map.pkl").is_file()


def test_near_duplicate_groups_on_planted_duplicates():
    keys = [f"k{i:02d}" for i in range(12)]
    rng = np.random.default_rng(0)
    hashes = rng.integers(0, 2**63, size=12, dtype=np.int64).astype(np.uint64)
    unit = rng.normal(size=(12, 8)).astype(np.float32)
    hashes[5] = hashes[2] ^ np.uint64(0b101)  # 2 bits from k02
    hashes[9] = hashes[2] ^ np.uint64(1 << 40 | 1 << 3 | 1 << 20)  # 3 bits from k02
    hashes[7] = hashes[4] ^ np.uint64(0xFF)  # 8 bits: too far
    unit[5] = unit[2] + 0.01
    unit[9] = unit[2] - 0.01
    unit[7] = unit[4]
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    valid = np.ones(12, bool)
    groups = find_groups(keys, hashes, valid, unit, NearDuplicateConfig(6, 0.97, "both"))
    assert sorted((keys[m], keys[r]) for m, r in groups) == [("k05", "k02"), ("k09", "k02")]
    either = find_groups(keys, hashes, valid, unit, NearDuplicateConfig(6, 0.97, "either"))
    assert ("k07", "k04") in [(keys[m], keys[r]) for m, r in either]
    unit[9] = -unit[2]
    assert [(keys[m], keys[r]) for m, r in find_groups(keys, hashes, valid, unit, NearDuplicateConfig())] == [
        ("k05", "k02")
    ]


def test_near_duplicates_command_on_planted_catalog_duplicates(workspace):
    import pyarrow as pa

    from workbench.cluster.duplicates import near_duplicate_pairs

    path = workspace / "catalog" / "figures.parquet"
    figures = pq.read_table(path)
    keys = figures.column("key").to_pylist()
    phash = figures.column("image_phash").to_pylist()
    a, b = sorted(keys)[3], sorted(keys)[10]
    phash[keys.index(b)] = f"{int(phash[keys.index(a)], 16) ^ 0b11:016x}"
    pq.write_table(
        figures.set_column(figures.schema.get_field_index("image_phash"), "image_phash", pa.array(phash, pa.string())),
        path,
    )
    folder = workspace / "embeddings" / "e"
    for shard in ("000000", "000001"):
        shard_keys = (folder / f"{shard}.keys.txt").read_text().split()
        vectors = np.load(folder / f"{shard}.image.npy")
        for key in (a, b):
            if key in shard_keys:
                vectors[shard_keys.index(key)] = np.eye(DIM, dtype=np.float16)[0]
        np.save(folder / f"{shard}.image.npy", vectors)
    argv = ["cluster", "near-duplicates", "--workspace", workspace, "--embeddings", "e", "--cosine", "0.999"]
    assert cli(*argv) == 0
    rows = pq.read_table(workspace / "catalog" / "near_duplicates.parquet").to_pylist()
    assert rows == [{"key": b, "near_duplicate_of": a, "phash_distance": 2, "cosine": pytest.approx(1.0)}]
    pairs = near_duplicate_pairs(workspace)
    assert pairs[0]["left"]["caption"] and pairs[0]["right"]["jpg_size"] > 0


@pytest.mark.parametrize(
    "argv",
    [
        ["cluster", "--embeddings", "nope"],
        ["cluster", "--embeddings", "../e"],
        ["cluster", "--embeddings", "foreign"],
        ["cluster", "--embeddings", "e", "--k", "100000"],
        ["cluster", "--embeddings", "e", "--pca", "999"],
        ["cluster", "assign", "--embeddings", "e", "--name", "never-fitted"],
        ["cluster", "assign", "--embeddings", "e", "--k", "5"],
        ["cluster", "near-duplicates", "--embeddings", "e", "--phash-distance", "40"],
        ["map", "--embeddings", "foreign"],
        ["map", "--embeddings", "nope"],
    ],
)
def test_bad_input_exits_2_with_nothing_written(workspace, argv, capsys):
    write_embedding_set(workspace, "foreign", {"000000": (["PMC0000001_F1_0", "PMC0000001_F2_0"], np.eye(2, DIM))})
    before = sorted(p for p in workspace.rglob("*"))
    assert cli(*argv[:1], *argv[1:], "--workspace", workspace) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"workbench {argv[0]}: error:")
    assert sorted(p for p in workspace.rglob("*")) == before


def test_assign_refuses_embeddings_of_another_model(workspace, capsys):
    assert cli("cluster", "--workspace", workspace, "--embeddings", "e", "--k", "4") == 0
    card = json.loads((workspace / "embeddings" / "e" / "card.json").read_text())
    (workspace / "embeddings" / "e" / "card.json").write_text(json.dumps(card | {"spec": "test:other"}))
    before = (workspace / "catalog" / "clusters" / "e.parquet").read_bytes()
    capsys.readouterr()
    assert cli("cluster", "assign", "--workspace", workspace, "--embeddings", "e") == 2
    assert "another model" in capsys.readouterr().err
    assert (workspace / "catalog" / "clusters" / "e.parquet").read_bytes() == before
