"""Cluster + map benchmark: seconds and peak RSS of PCA, k-means (k=2000) and UMAP; cluster quality on a sample mirror.

Cost: synthetic 512-d float32 vectors drawn around 2000 Gaussian centres (100k by default, `--rows 1000000` for
1M), each stage in its own process so peak RSS (ru_maxrss, including the generated vectors) is the stage's own:
PCA to 45 components, k-means k=2000 on the PCA output (faiss; scikit-learn's KMeans measured alongside on a
smaller set, `--sklearn-rows`), and the map (PCA 50 + UMAP fitted on 50k, the rest transformed).

Quality: a sample mirror (`--articles`, 16 ground-truth concepts) is extracted, each available offline
embedder is run, k-means with k=16 clusters it, and purity and adjusted Rand index against the concepts are
printed side by side. Embedders: `builtin` when `workbench.embed` provides it, and always the stand-in
`thumbnail32` (raw 32x32 RGB thumbnails, L2-normalised).

Measured (2 cores shared with other jobs, load ~6, so about a third of a core each; 100k rows): PCA 10.8 s,
faiss k-means k=2000 70.8 s, peak RSS 821 MB; faiss 3.4x faster than scikit-learn at 20k rows, k=400;
UMAP fitted on 50k and transforming 50k: 856 s, 1357 MB; fitted on 20k, transforming 80k: 495 s, 908 MB
(single-threaded: umap-learn runs on one thread when seeded). Thumbnail stand-in, 100 articles: purity 0.736, ARI 0.492.

    .venv/bin/python benchmarks/cluster.py                  # 100k vectors + a 100-article mirror (~5 min, 2 cores)
    .venv/bin/python benchmarks/cluster.py --rows 1000000   # the 1M figures (much longer)
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from workbench.cluster.model import fit_kmeans, fit_pca  # noqa: E402
from workbench.cluster.umap_map import MapConfig, compute_map  # noqa: E402
from workbench.workspace import Workspace  # noqa: E402

DIM = 512


def synthetic(rows: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(2000, DIM)).astype(np.float32)
    vectors = centres[rng.integers(0, 2000, rows)] + rng.normal(scale=0.5, size=(rows, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def stage(name: str, rows: int, k: int, sample: int = 50_000) -> dict:
    """Run one stage in this process; seconds exclude generating the vectors."""
    vectors = synthetic(rows)
    started = time.perf_counter()
    if name == "pca":
        fit_pca(vectors, 45)
    elif name.startswith("kmeans"):
        mean, components = fit_pca(vectors, 45)
        points = (vectors - mean) @ components.T
        started = time.perf_counter()
        fit_kmeans(points, k, seed=0, backend=name.split("-")[1])
    elif name == "umap":
        compute_map(vectors, MapConfig(sample=sample))
    seconds = time.perf_counter() - started
    return {
        "stage": name,
        "rows": rows,
        "k": k,
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def run_stage(name: str, rows: int, k: int, sample: int = 50_000) -> dict:
    command = [
        sys.executable,
        __file__,
        "--stage",
        name,
        "--rows",
        str(rows),
        "--k",
        str(k),
        "--map-sample",
        str(sample),
    ]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def thumbnails(workspace: Path, keys: list[str]) -> np.ndarray:
    from PIL import Image

    from workbench.cluster.source import catalog_columns

    rows = catalog_columns(Workspace.at(workspace), keys, ("shard", "jpg_offset", "jpg_size"))
    vectors = []
    for shard, offset, size in zip(rows["shard"], rows["jpg_offset"], rows["jpg_size"], strict=True):
        with open(workspace / shard, "rb") as handle:
            handle.seek(offset)
            data = handle.read(size)
        image = Image.open(io.BytesIO(data)).convert("RGB").resize((32, 32))
        vectors.append(np.asarray(image, np.float32).ravel() / 255.0)
    vectors = np.asarray(vectors) - np.mean(vectors, axis=0)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-6)


def purity_and_ari(labels: list[str], clusters: np.ndarray) -> tuple[float, float]:
    from collections import Counter

    from sklearn.metrics import adjusted_rand_score

    majority = 0
    for cluster in np.unique(clusters):
        majority += Counter(label for label, c in zip(labels, clusters, strict=True) if c == cluster).most_common(1)[0][
            1
        ]
    return majority / len(labels), float(adjusted_rand_score(labels, clusters))


def builtin_vectors(root: Path, keys: list[str]) -> np.ndarray:
    """The built-in embedder through `workbench embed`'s own run, aligned with `keys`."""
    from workbench.embed.run import EmbedConfig, run_embedding
    from workbench.embed.store import EmbeddingSet
    from workbench.workspace import Workspace

    run_embedding(EmbedConfig(root, "builtin", name="builtin", batch_size=32, progress=False))
    embedded, vectors = EmbeddingSet.of(Workspace.at(root), "builtin").load()
    order = {key: row for row, key in enumerate(embedded)}
    return vectors[[order[key] for key in keys]]


def quality(articles: int) -> list[dict]:
    import pyarrow.parquet as pq

    from workbench.cluster.model import ClusterModel
    from workbench.extract.pipeline import ExtractionConfig, run_extraction
    from workbench.mirror import build_sample_mirror

    results = []
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        build_sample_mirror(root / "mirror", articles, seed=7, progress=False)
        run_extraction(ExtractionConfig(workspace=root, workers=0, progress=False))
        keys = sorted(pq.read_table(root / "catalog" / "figures.parquet", columns=["key"])["key"].to_pylist())
        truth = {}
        for line in (root / "mirror" / "ground_truth.jsonl").read_text().splitlines():
            row = json.loads(line)
            truth[f"{row['pmcid']}_{row['figure_id']}"] = row["concept"]
        labels = [truth[key.rsplit("_", 1)[0]] for key in keys]
        embedders = {
            "builtin (workbench embed)": lambda: builtin_vectors(root, keys),
            "thumbnail32 (raw pixels, a baseline)": lambda: thumbnails(root, keys),
        }
        for name, embed in embedders.items():
            vectors = embed().astype(np.float32)
            mean, components = fit_pca(vectors, min(45, len(keys) - 1))
            centroids = fit_kmeans((vectors - mean) @ components.T, 16, seed=0)
            ids, _ = ClusterModel(mean, components, centroids).nearest(vectors)
            purity, ari = purity_and_ari(labels, ids)
            chance, _ = purity_and_ari(labels, np.random.default_rng(0).integers(0, 16, len(keys)))
            results.append(
                {
                    "embedder": name,
                    "figures": len(keys),
                    "purity": round(purity, 3),
                    "ari": round(ari, 3),
                    "purity_random": round(chance, 3),
                }
            )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="synthetic vectors (default 100000; 1M: 1000000)")
    parser.add_argument("--k", type=int, default=2000)
    parser.add_argument("--sklearn-rows", type=int, default=20_000, help="rows for the scikit-learn k-means peer")
    parser.add_argument("--articles", type=int, default=100, help="sample-mirror articles for the quality table")
    parser.add_argument(
        "--map-sample",
        type=int,
        default=20_000,
        help="points UMAP is fitted on (default 20000; `workbench map` uses 50000)",
    )
    parser.add_argument("--skip-umap", action="store_true")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stage:
        print(json.dumps(stage(args.stage, args.rows, args.k, args.map_sample)))
        return 0
    rows = [run_stage("pca", args.rows, args.k), run_stage("kmeans-faiss", args.rows, args.k)]
    small_k = max(2, args.k * args.sklearn_rows // args.rows)
    rows += [
        run_stage("kmeans-faiss", args.sklearn_rows, small_k),
        run_stage("kmeans-sklearn", args.sklearn_rows, small_k),
    ]
    if not args.skip_umap:
        rows.append(run_stage("umap", args.rows, args.k, args.map_sample))
    print(f"{'stage':<16}{'rows':>10}{'k':>6}{'seconds':>10}{'peak RSS MB':>13}")
    for row in rows:
        print(f"{row['stage']:<16}{row['rows']:>10}{row['k']:>6}{row['seconds']:>10.2f}{row['peak_rss_mb']:>13}")
    faiss_small, sklearn_small = rows[2]["seconds"], rows[3]["seconds"]
    print(
        f"k-means faiss vs scikit-learn at {args.sklearn_rows} rows, k={small_k}: "
        f"{sklearn_small / max(faiss_small, 1e-9):.1f}x faster"
    )
    print(f"\ncluster quality, k=16, {args.articles}-article sample mirror (16 concepts)")
    print(f"{'embedder':<26}{'figures':>8}{'purity':>8}{'ARI':>8}{'purity (random)':>17}")
    for row in quality(args.articles):
        print(
            f"{row['embedder']:<26}{row['figures']:>8}{row['purity']:>8.3f}{row['ari']:>8.3f}{row['purity_random']:>17.3f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
