"""The `articles` search list at scale (run by benchmarks/search.py): N synthetic articles, ~4 figures each.

Articles (title, abstract, ~225-word body) are drawn from the catalog benchmark's vocabulary with its Zipf-like skew
(benchmarks/catalog.py), their figures are that benchmark's synthetic catalog (pmcid = PMC{1000000 + article}).
Measured, one query at a time (2-3 words): the article index's BM25 top-10, the whole `articles` list
(`SearchEngine.article_list`: BM25 top articles -> their selected figures through the catalog, 100 candidates)
without and with a licence filter, and bm25s (no stemmer, memory-mapped) top-10 over the same article texts in the
same run as the peer; plus both build times and an incremental update of 1% of the articles.
"""

from __future__ import annotations

import random
import shutil
import sys
import time
from pathlib import Path

import duckdb
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import catalog as catalog_bench  # noqa: E402 - benchmarks/catalog.py, beside this file

from workbench.catalog import FigureFilter, open_catalog  # noqa: E402
from workbench.search.articles import ArticleIndex, update_article_index  # noqa: E402
from workbench.search.query import SearchEngine  # noqa: E402
from workbench.workspace import Workspace  # noqa: E402

FIGURES_PER_ARTICLE = 4  # as benchmarks/catalog.py generates them
WORDS = (
    "array_to_string(list_transform(range(({base} + hash(a, {salt}) % {spread})::BIGINT), j -> $vocab[1 + floor("
    "len($vocab) * pow(hash(a, j, {salt}, $edit * (a < $edited)::INTEGER) % 100000 / 100000.0, 3))::BIGINT]), ' ')"
)
GENERATE_ARTICLES = f"""
COPY (
SELECT 'PMC' || (1000000 + a)::VARCHAR AS pmcid,
       {WORDS.format(base=6, spread=10, salt=31)} AS title,
       {WORDS.format(base=40, spread=40, salt=32)} AS abstract,
       {WORDS.format(base=150, spread=150, salt=33)} AS text
FROM range($articles) AS t(a)
) TO '{{target}}' (FORMAT parquet, COMPRESSION zstd)"""


def _percentiles(values: list[float]) -> tuple[float, float]:
    return float(np.percentile(values, 50)), float(np.percentile(values, 95))


def _timed(run, queries: list[str]) -> tuple[float, float]:
    for query in queries[:10]:
        run(query)  # warm caches the way a running server has them
    times = []
    for query in queries:
        started = time.perf_counter()
        run(query)
        times.append((time.perf_counter() - started) * 1000)
    return _percentiles(times)


def write_articles(path: Path, articles: int, vocab: list[str], edited: int = 0) -> None:
    """articles.parquet; the first `edited` articles get other words (an update of their text)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(config={"memory_limit": "2GB"}) as connection:
        params = {"articles": articles, "vocab": vocab, "edit": 1, "edited": edited}
        connection.execute(GENERATE_ARTICLES.format(target=str(path).replace("'", "''")), params)


def bm25s_peer(path: Path, folder: Path, queries: list[str]) -> dict | None:
    try:
        import bm25s
    except ImportError:
        return None
    started = time.perf_counter()
    with duckdb.connect() as connection:
        statement = "SELECT concat_ws(chr(10), title, abstract, text) FROM read_parquet($path) ORDER BY pmcid"
        texts = [text for (text,) in connection.execute(statement, {"path": str(path)}).fetchall()]
    model = bm25s.BM25()
    model.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
    model.save(str(folder / "bm25s"))
    del texts, model
    build_s = time.perf_counter() - started
    model = bm25s.BM25.load(str(folder / "bm25s"), mmap=True)

    def top(query: str) -> int:
        tokens = bm25s.tokenize([query], stopwords="en", show_progress=False)
        return len(model.retrieve(tokens, k=10, show_progress=False, n_threads=1)[0][0])

    return {"build_s": build_s, "top10_ms": _timed(top, queries)}


def run(folder: Path, articles: int, queries_n: int = 100) -> dict:
    """Build everything under `folder`, measure, return the figures."""
    vocab = catalog_bench.vocabulary()
    started = time.perf_counter()
    figures = catalog_bench.generate_catalog(folder / "figures", articles * FIGURES_PER_ARTICLE, "2GB")
    catalog_s = time.perf_counter() - started
    texts = Workspace.at(folder / "texts")  # the article index is built here, then moved beside the figures
    write_articles(texts.catalog_dir / "articles.parquet", articles, vocab)
    (texts.catalog_dir / "figures.parquet").symlink_to(figures.catalog_dir / "figures.parquet")
    started = time.perf_counter()
    built = update_article_index(texts, progress=False)
    build_s = time.perf_counter() - started
    write_articles(texts.catalog_dir / "articles.parquet", articles, vocab, edited=articles // 100)
    started = time.perf_counter()
    update = update_article_index(texts, progress=False)
    update_s = time.perf_counter() - started
    target = figures.root / "indexes" / "articles"
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(texts.root / "indexes" / "articles"), target)
    rng = random.Random(5)
    queries = [" ".join(rng.sample(vocab[30:3000], rng.randint(2, 3))) for _ in range(queries_n)]
    index = ArticleIndex.open(figures)
    selection = FigureFilter(license_groups=("noncommercial",))
    with open_catalog(figures, progress=False) as catalog:
        engine = SearchEngine(figures, catalog, None, "")  # the article list needs no vectors or model
        top10 = _timed(lambda q: index.ranked(q, 10), queries)
        listed = _timed(lambda q: engine.article_list(q, 100, FigureFilter()), queries)  # keys stored in the index
        filtered = _timed(lambda q: engine.article_list(q, 100, selection), queries)  # keys from the catalog
        kept = np.mean([len(engine.article_list(q, 100, selection)) for q in queries[:20]])
    peer = bm25s_peer(texts.catalog_dir / "articles.parquet", folder, queries)
    return {
        "articles": built.documents,
        "figures": articles * FIGURES_PER_ARTICLE,
        "catalog_s": catalog_s,
        "build_s": build_s,
        "update": (update.added, update.deleted, update_s),
        "bytes": sum(p.stat().st_size for p in target.rglob("*") if p.is_file()),
        "top10_ms": top10,
        "list_ms": listed,
        "filtered_ms": filtered,
        "filtered_kept": float(kept),
        "bm25s": peer,
    }


def report(result: dict) -> list[str]:
    """The printed lines."""
    n, b = result["articles"], result["bytes"]
    t50, t95 = result["top10_ms"]
    l50, l95 = result["list_ms"]
    f50, f95 = result["filtered_ms"]
    added, deleted, update_s = result["update"]
    lines = [
        f"  article list over {n:,} synthetic articles (~300 words each; {result['figures']:,} figures): "
        f"BM25 top-10 articles p50 {t50:.2f} ms p95 {t95:.2f} ms; whole list (top articles -> 100 figures, keys "
        f"stored in the index) p50 {l50:.1f} ms p95 {l95:.1f} ms; with a licence filter (keys through the catalog) "
        f"p50 {f50:.1f} ms p95 {f95:.1f} ms ({result['filtered_kept']:.0f} figures kept)",
        f"  article index: built in {result['build_s']:.1f} s ({b / 1e6:.0f} MB, {b / n:.0f} B/article); "
        f"+{added:,} / -{deleted:,} changed articles in {update_s:.1f} s",
    ]
    peer = result["bm25s"]
    if peer:
        p50, p95 = peer["top10_ms"]
        lines.append(
            f"  article BM25 top-10 peer bm25s (same texts, no stemmer, mmap): p50 {p50:.2f} ms p95 {p95:.2f} ms "
            f"({p50 / t50:.1f}x the article index), built in {peer['build_s']:.1f} s"
        )
    else:
        lines.append("  article BM25 peer: bm25s not installed, skipped")
    return lines
