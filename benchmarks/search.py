"""Search benchmark: vector query latency and recall of `workbench index` against exact faiss, hybrid query latency,
and resident memory at two sizes projected to 24M figures.

Vectors: synthetic 512-d unit vectors drawn around 2000 Gaussian centres, written as a real embedding set
(WS/embeddings/bench/, float16 shards of 100k) and indexed by `workbench.search.index.build_index` exactly as
`workbench index` does (IVF-SQ8 above 200k rows). Queries are new draws from the same centres, one at a time.
Peer, same run: exact faiss (`IndexFlatIP` over the same float32 vectors) gives the latency beside and the truth
for recall@10.

Memory: a fresh process opens the index memory-mapped and answers the queries; its RSS (minus the interpreter's
own, measured the same way without an index) at `--rows` and `--rows / 4` gives bytes per row, projected to 24M.

Hybrid: text query + licence filter through `SearchEngine` (BM25, article BM25 + the model's text tower on image
and caption vectors + RRF) on a small real workspace (a sample mirror embedded with a tiny random open_clip model):
the fusion, filter and encoding overheads, not BM25 at scale (the catalog benchmark measures that).

Articles (benchmarks/search_articles.py): the `articles` list over --article-count synthetic articles (~4 figures
each): BM25 top-10, the whole list with and without a licence filter, bm25s on the same texts as the peer.

    .venv/bin/python benchmarks/search.py                   # 1M vectors (~10 min on 2 cores, ~3 GB RAM)
    .venv/bin/python benchmarks/search.py --rows 200000     # quicker
    .venv/bin/python benchmarks/search.py --skip-vectors --skip-hybrid   # the article list alone (~2 min)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from workbench.embed.store import write_card, write_shard  # noqa: E402
from workbench.search.index import IndexConfig, build_index, open_index  # noqa: E402
from workbench.workspace import Workspace  # noqa: E402

DIM, CENTRES, SHARD_ROWS = 512, 2000, 100_000
WORDS = ["microscopy", "tomography", "survival curve", "histology of the liver", "western blot", "x-ray chest"]


def mixture(rng: np.random.Generator, centres: np.ndarray, n: int, spread: float = 0.6) -> np.ndarray:
    points = centres[rng.integers(0, len(centres), n)] + rng.normal(0, spread / np.sqrt(DIM), (n, DIM))
    points = points.astype(np.float32)
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    return points


def make_set(root: Path, rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Write `rows` vectors as embedding set `bench`; return them (float32, as stored) and 200 queries."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(CENTRES, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    folder = root / "embeddings" / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    write_card(folder, {"spec": "synthetic", "towers": ["image"], "dims": {"image": DIM}, "normalised": True})
    blocks = []
    for shard, start in enumerate(range(0, rows, SHARD_ROWS)):
        block = mixture(rng, centres, min(SHARD_ROWS, rows - start))
        keys = [f"S{start + i:09d}" for i in range(len(block))]
        write_shard(folder, f"{shard:06d}", keys, {"image": block}, 0.0)
        blocks.append(block.astype(np.float16).astype(np.float32))
    return np.concatenate(blocks), mixture(rng, centres, 200)


def percentiles(values: list[float]) -> tuple[float, float]:
    return float(np.percentile(values, 50)), float(np.percentile(values, 95))


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


def rss_after_queries(root: Path | None, queries: Path) -> float:
    """RSS (MB) of a fresh process that opened the index and ran the queries (root None: no index)."""
    command = [sys.executable, __file__, "--rss-child", str(root or ""), str(queries)]
    out = subprocess.run(command, check=True, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def _rss_child(root: str, queries: str) -> None:
    import faiss  # noqa: F401  (the interpreter baseline includes faiss)

    vectors = np.load(queries)
    if root:
        index = open_index(Workspace.at(root), "bench")
        for query in vectors:
            index.search("image", query, 10)
    print(rss_mb())


def vector_benchmark(rows: int, folder: Path, config: IndexConfig) -> dict:
    import faiss

    faiss.omp_set_num_threads(os.cpu_count() or 1)
    root = folder / f"ws-{rows}"
    started = time.perf_counter()
    vectors, queries = make_set(root, rows)
    made_s = time.perf_counter() - started
    started = time.perf_counter()
    report = build_index(Workspace.at(root), "bench", config)
    build_s = time.perf_counter() - started
    exact = faiss.IndexFlatIP(DIM)
    exact.add(vectors)
    del vectors
    exact_ms, truth = [], []
    for query in queries:
        t = time.perf_counter()
        _, found = exact.search(query.reshape(1, -1), 10)
        exact_ms.append((time.perf_counter() - t) * 1000)
        truth.append(set(found[0].tolist()))
    del exact
    index = open_index(Workspace.at(root), "bench")
    for query in queries[:20]:  # warm the memory-mapped pages the way a running server has them
        index.search("image", query, 10)
    approx_ms, recalls = [], []
    for query, true in zip(queries, truth, strict=True):
        t = time.perf_counter()
        _, found = index.search("image", query, 10)
        approx_ms.append((time.perf_counter() - t) * 1000)
        recalls.append(len(true & set(found.tolist())) / 10)
    np.save(folder / "queries.npy", queries)
    return {
        "rows": rows,
        "factory": report.towers["image"],
        "nprobe": index.manifest["towers"]["image"]["nprobe"],
        "make_s": made_s,
        "build_s": build_s,
        "exact_ms": percentiles(exact_ms),
        "index_ms": percentiles(approx_ms),
        "recall_at_10": float(np.mean(recalls)),
        "root": root,
    }


def make_clip_workspace(folder: Path, articles: int) -> Path:
    """A sample mirror extracted, embedded with a tiny random open_clip model (set `clip`) and indexed."""
    import open_clip
    import torch

    from workbench.cli import main

    mirror, root = folder / "mirror", folder / "hybrid"
    quiet = ["--no-progress"]
    main(["sample-mirror", str(mirror), "--articles", str(articles), "--seed", "7", *quiet])
    main(["acquire", "--source", str(mirror), "--workspace", str(root), *quiet])
    main(["extract", "--workspace", str(root), "--workers", "0", *quiet])
    config = folder / "tiny-clip-bench.json"
    config.write_text(
        json.dumps(
            {
                "embed_dim": 512,
                "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16},
                "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 256, "heads": 4, "layers": 4},
            }
        )
    )
    open_clip.add_model_config(config)
    torch.manual_seed(0)
    torch.save(open_clip.create_model("tiny-clip-bench").state_dict(), folder / "clip.pt")
    spec = f"open_clip:{config}:{folder / 'clip.pt'}"
    main(["embed", "--workspace", str(root), "--model", spec, "--name", "clip", "--num-workers", "0", *quiet])
    main(["index", "--workspace", str(root), "--embeddings", "clip"])
    return root


def hybrid_benchmark(folder: Path, articles: int) -> dict:
    """Text + licence filter through SearchEngine on a small sample-mirror workspace with a tiny CLIP model."""
    from workbench.catalog import FigureFilter
    from workbench.search.query import SearchEngine, SearchRequest

    root = make_clip_workspace(folder, articles)
    words = WORDS
    selection = FigureFilter(license_groups=("commercial",))
    with SearchEngine.open(root, "clip") as engine:
        engine.search(SearchRequest(text="warm up", filter=selection))
        timings = []
        for i in range(60):
            response = engine.search(SearchRequest(text=words[i % len(words)], k=10, filter=selection))
            timings.append(response.timings_ms)
        rows = engine.index.rows
    total = [t["total"] for t in timings]
    stages = {name: float(np.median([t.get(name, 0.0) for t in timings])) for name in timings[0]}
    return {"rows": rows, "total_ms": percentiles(total), "stages_ms": stages}


def vector_lines(folder: Path, args: argparse.Namespace) -> None:
    """Vector latency and recall at two sizes against exact faiss; resident memory projected to 24M."""
    cores = os.cpu_count()
    config = IndexConfig(flat_max_rows=args.flat_max_rows, nprobe=args.nprobe)
    small = vector_benchmark(args.rows // 4, folder, config)
    big = vector_benchmark(args.rows, folder, config)
    baseline = rss_after_queries(None, folder / "queries.npy")
    rss_small = rss_after_queries(small["root"], folder / "queries.npy") - baseline
    rss_big = rss_after_queries(big["root"], folder / "queries.npy") - baseline
    per_row = (rss_big - rss_small) / (big["rows"] - small["rows"])
    projected_gb = (rss_small + per_row * (24_000_000 - small["rows"])) / 1024
    load = os.getloadavg()[0]
    print(f"search benchmark on {cores} cores (load {load:.1f}), {DIM}-d synthetic vectors, 200 queries, k=10")
    for run in (small, big):
        e50, e95 = run["exact_ms"]
        a50, a95 = run["index_ms"]
        print(
            f"  {run['rows']:>9,} rows  {run['factory']} nprobe {run['nprobe']}: p50 {a50:.2f} ms  p95 {a95:.2f} ms"
            f"  recall@10 {run['recall_at_10']:.3f} | exact faiss p50 {e50:.1f} ms p95 {e95:.1f} ms"
            f"  ({e50 / a50:.1f}x) | build {run['build_s']:.0f} s"
        )
    print(
        f"  resident memory after queries (index memory-mapped): {rss_small:.0f} MB at {small['rows']:,}, "
        f"{rss_big:.0f} MB at {big['rows']:,}; projected 24M: {projected_gb:.1f} GB "
        f"({per_row * 1024 * 1024:.0f} bytes/row)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--articles", type=int, default=60, help="sample-mirror articles for the hybrid query")
    parser.add_argument("--skip-hybrid", action="store_true")
    parser.add_argument("--skip-vectors", action="store_true", help="no vector latency, recall or memory lines")
    parser.add_argument("--article-count", type=int, default=50_000, help="synthetic articles for the article list")
    parser.add_argument("--skip-articles", action="store_true")
    parser.add_argument(
        "--flat-max-rows", type=int, default=200_000, help="exact index up to N rows (as `workbench index`)"
    )
    parser.add_argument("--nprobe", type=int, default=64, help="IVF lists searched (as `workbench index`)")
    parser.add_argument("--rss-child", nargs=2, metavar=("ROOT", "QUERIES"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rss_child:
        _rss_child(*args.rss_child)
        return 0
    cores = os.cpu_count()
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        folder = Path(tmp)
        if not args.skip_vectors:
            vector_lines(folder, args)
        else:
            print(f"search benchmark on {cores} cores (load {os.getloadavg()[0]:.1f})")
        if not args.skip_hybrid:
            hybrid = hybrid_benchmark(folder, args.articles)
            h50, h95 = hybrid["total_ms"]
            stages = ", ".join(f"{name} {ms:.1f}" for name, ms in hybrid["stages_ms"].items() if name != "total")
            print(
                f"  hybrid text query (BM25 + text tower on image and caption vectors + RRF + licence filter), "
                f"{hybrid['rows']:,} figures: p50 {h50:.1f} ms  p95 {h95:.1f} ms  (median stages ms: {stages})"
            )
        if not args.skip_articles:
            import search_articles  # benchmarks/search_articles.py (imported here: not in the RSS child runs)

            for line in search_articles.report(search_articles.run(folder / "articles", args.article_count)):
                print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
