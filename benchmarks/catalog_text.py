"""BM25 at archive scale: the text index (tantivy, WS/indexes/text) over the big catalog, with its peers.

Called by benchmarks/catalog.py (section "text"), or alone:

    .venv/bin/python benchmarks/catalog_text.py --rows 24000000 --slice-rows 1000000

On the big catalog: build time (measured when the index is built in this run, else the time recorded when it was
built), index bytes, an incremental update adding 10,000 figures (and the one removing them again), and top-10
latency p50/p95 over a fixed query set, alone and combined with a licence + years filter. Peers, measured in the
same run on the first `--slice-rows` figures: the text index itself (same size, so a fair ratio), DuckDB's fts
extension queried as the workbench did before the text index (set-based BM25 over its postings), and bm25s (a
memory-mapped sparse matrix; no update in place: any change rebuilds it).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from workbench.catalog import FigureFilter, open_catalog  # noqa: E402
from workbench.catalog import textindex as ti  # noqa: E402
from workbench.catalog.layers import MANIFEST  # noqa: E402
from workbench.duckdb_extensions import load_extension  # noqa: E402
from workbench.extract.catalog import part_path  # noqa: E402
from workbench.fileio import read_json, write_json_atomically  # noqa: E402
from workbench.workspace import Workspace  # noqa: E402

QUERIES = (
    "fluorescence microscopy",
    "tumour cells",
    "kaplan meier survival",
    "cd4 lymphocytes flow cytometry",
    "axial t2 weighted mri",
    "representative staining of treated mice",
    "scale bar",
    "western blot expression control",
    "section",
    "cardiomyocyte",
)
ADDED = 10_000
FTS_INDEX = "fts_main_search_text"
# The peer: DuckDB's fts extension as the workbench used it before the text index (refresh built it inside
# catalog.duckdb; queries computed BM25 set-wise over the postings of the query terms).
FTS_BUILD = (
    "CREATE OR REPLACE TABLE figures AS SELECT key, caption, inline_references, article_title "
    "FROM read_parquet($path) LIMIT $rows",
    "CREATE OR REPLACE TABLE search_text AS SELECT key, caption, array_to_string(inline_references, chr(10)) "
    "AS inline_text, article_title AS title FROM figures",
    "PRAGMA create_fts_index('search_text', 'key', 'caption', 'inline_text', 'title', stemmer = 'porter', "
    "stopwords = 'english', ignore = '(\\.|[^a-z0-9])+', strip_accents = 1, lower = 1, overwrite = 1)",
    "DROP TABLE search_text",
    f"CREATE OR REPLACE TABLE {FTS_INDEX}.terms AS SELECT * FROM {FTS_INDEX}.terms ORDER BY termid, docid",
)
FTS_TERM_IDS = f"""
SELECT dict.termid FROM (
    SELECT DISTINCT stem(word, 'porter') AS term FROM (SELECT unnest({FTS_INDEX}.tokenize(?)) AS word)
    WHERE word NOT IN (SELECT sw FROM {FTS_INDEX}.stopwords)
) AS query JOIN {FTS_INDEX}.dict AS dict ON dict.term = query.term"""
# Verbatim the workbench's query before the text index (workbench/catalog/sql.py SEARCH_TEXT_ONLY).
_SEARCH_POSTINGS = """
WITH selected_docs AS (
    SELECT docs.docid, docs.name, docs.len FROM {index}.docs AS docs WHERE docs.docid IN (
        SELECT terms.docid FROM {index}.terms AS terms WHERE terms.termid IN ({term_ids})
        GROUP BY terms.docid HAVING count(DISTINCT terms.termid) >= ?)
), """
_SEARCH_RANKED = """query_terms AS (
    SELECT dict.termid, log((stats.num_docs::DOUBLE - dict.df + 0.5) / (dict.df + 0.5) + 1) AS idf
    FROM {index}.dict AS dict CROSS JOIN {index}.stats AS stats
    WHERE dict.termid IN ({term_ids})
), postings AS (
    SELECT terms.docid, terms.termid, terms.fieldid, count(*)::DOUBLE AS tf
    FROM {index}.terms AS terms
    WHERE terms.termid IN ({term_ids}) AND terms.docid IN (SELECT docid FROM selected_docs)
    GROUP BY ALL
), scores AS (
    SELECT p.docid, sum(q.idf * p.tf * 2.2 / (p.tf + 1.2 * (0.25 + 0.75 * d.len::DOUBLE / stats.avgdl))) AS score
    FROM (SELECT docid, termid, sum(tf) AS tf FROM postings GROUP BY ALL) AS p
    JOIN query_terms AS q ON q.termid = p.termid
    JOIN selected_docs AS d ON d.docid = p.docid
    CROSS JOIN {index}.stats AS stats
    GROUP BY p.docid
), matched AS (
    SELECT postings.docid, list_sort(list_distinct(list(fields.field))) AS fields
    FROM postings JOIN {index}.fields AS fields ON fields.fieldid = postings.fieldid
    GROUP BY postings.docid
)
SELECT d.name AS key, coalesce(scores.score, 0) AS score, coalesce(matched.fields, []::VARCHAR[]) AS matched
FROM selected_docs AS d
LEFT JOIN scores ON scores.docid = d.docid
LEFT JOIN matched ON matched.docid = d.docid
ORDER BY score DESC, key
LIMIT ?"""
FTS_TOP = _SEARCH_POSTINGS + _SEARCH_RANKED


def _say(text: str) -> None:
    print(text, flush=True)


def _percentiles(run, queries, repeat: int) -> tuple[float, float, float]:
    """Wall-clock p50/p95 and CPU-time p50 (this process, all threads) in ms over every (query, repetition),
    after one warm-up pass. On a shared machine the CPU time says what the wall clock would be without others."""
    for query in queries:
        run(query)
    times, cpu = [], []
    for _ in range(repeat):
        for query in queries:
            started, cpu_started = time.perf_counter(), time.process_time()
            run(query)
            times.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - cpu_started) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, round(0.95 * (len(times) - 1)))], statistics.median(cpu)


def _line(label: str, p50: float, p95: float, cpu: float) -> tuple[str, float, float]:
    _say(f"  {label:<66} p50 {p50:8.1f} ms  p95 {p95:8.1f} ms  (CPU p50 {cpu:.1f} ms)")
    return label, p50, p95


def ensure_index(workspace: Workspace) -> tuple[float, int, int]:
    """(build seconds, index bytes, figures) of the workspace's text index, building it when missing or stale."""
    report = ti.update_text_index(workspace, progress=True)
    state = ti.read_json(ti.index_root(workspace) / "state.json", default=dict)
    seconds = report.seconds if report.rebuilt else float(state.get("built_seconds") or "nan")
    return seconds, ti.index_bytes(workspace), report.documents


def measure_incremental(workspace: Workspace, folder: Path) -> tuple[float, float, int]:
    """Seconds to add 10,000 new figures and to remove them again; figures before. With an extraction manifest:
    a new unit (its part + the manifest, as `extract` publishes it), then all its articles superseded; without:
    a second Parquet file beside figures.parquet, then dropped."""
    figures = ti.figures_parquet(workspace)
    manifest = read_json(workspace.catalog_dir / MANIFEST, default=dict)
    if manifest.get("units"):
        unit = f"text-{len(manifest['units']):06d}"
        part = part_path(workspace, "figures", unit)
        with duckdb.connect() as connection:
            connection.execute(
                f"COPY (SELECT * REPLACE (key || '_{unit}' AS key, pmcid || '_{unit}' AS pmcid) "
                f"FROM read_parquet($path) LIMIT {ADDED}) TO '{str(part).replace(chr(39), chr(39) * 2)}' "
                f"(FORMAT parquet)",
                {"path": str(figures)},
            )
            found = connection.execute("SELECT DISTINCT pmcid FROM read_parquet(?)", [str(part)]).fetchall()
            pmcids = [row[0] for row in found]
        manifest["units"] = sorted([*manifest["units"], unit])
        write_json_atomically(manifest, workspace.catalog_dir / MANIFEST)
        added = ti.update_text_index(workspace, progress=False)
        manifest["superseded"] = sorted([*manifest.get("superseded", []), *([unit, pmcid] for pmcid in pmcids)])
        write_json_atomically(manifest, workspace.catalog_dir / MANIFEST)
        removed = ti.update_text_index(workspace, progress=False)
    else:
        extra = folder / f"added-{ADDED}.parquet"
        if not extra.exists():
            with duckdb.connect() as connection:
                connection.execute(
                    f"COPY (SELECT * REPLACE (key || '_added' AS key, txt_offset + 1 AS txt_offset) "
                    f"FROM read_parquet($path) LIMIT {ADDED}) TO '{str(extra).replace(chr(39), chr(39) * 2)}' "
                    f"(FORMAT parquet)",
                    {"path": str(figures)},
                )
        added = ti.update_text_index(workspace, sources=[figures, extra], progress=False)
        removed = ti.update_text_index(workspace, progress=False)
    assert added.added == ADDED and not added.rebuilt, added
    assert removed.deleted == ADDED and not removed.rebuilt, removed
    return added.seconds, removed.seconds, removed.documents


def measure_index(workspace: Workspace, repeat: int, label: str) -> list[tuple[str, float, float]]:
    index = ti.TextIndex.open(workspace)
    return [_line(f"BM25 top-10 over {label}: text index", *_percentiles(lambda q: index.top(q, 10), QUERIES, repeat))]


def measure_filtered(workspace: Workspace, repeat: int, label: str) -> list[tuple[str, float, float]]:
    selection = FigureFilter(license_groups=("commercial",), year_from=2015, year_to=2020)
    with open_catalog(workspace, refresh=False) as catalog:
        measured = _percentiles(lambda q: catalog.search(q, 10, selection), QUERIES, max(1, repeat // 3))
    return [_line(f"BM25 top-10 + licence/years filter over {label}: workbench", *measured)]


def measure_fts(folder: Path, source: Path, rows: int, repeat: int) -> list[tuple[str, float, float]]:
    database = folder / f"fts-peer-{rows}.duckdb"
    if not database.exists():
        started = time.perf_counter()
        build = database.with_name(database.name + ".build")
        build.unlink(missing_ok=True)
        with duckdb.connect(str(build)) as connection:
            load_extension(connection, "fts")
            for statement in FTS_BUILD:
                connection.execute(statement, {"path": str(source), "rows": rows} if "$rows" in statement else None)
            connection.execute("CHECKPOINT")
        build.rename(database)
        _say(f"  DuckDB fts index over {rows:,} figures built in {time.perf_counter() - started:.0f} s")
    connection = duckdb.connect(str(database), read_only=True)
    load_extension(connection, "fts")

    def top(query: str) -> int:
        ids = [termid for (termid,) in connection.execute(FTS_TERM_IDS, [query]).fetchall()]
        if not ids:
            return 0
        marks = ", ".join("?" for _ in ids)
        statement = FTS_TOP.format(index=FTS_INDEX, term_ids=marks)
        return len(connection.execute(statement, [*ids, 1, *ids, *ids, 10]).fetchall())

    result = _line(f"BM25 top-10 over {rows:,} figures: DuckDB fts (before)", *_percentiles(top, QUERIES, repeat))
    connection.close()
    return [result]


def measure_bm25s(folder: Path, source: Path, rows: int, repeat: int) -> list[tuple[str, float, float]]:
    try:
        import bm25s
    except ImportError:
        _say("  bm25s not installed: peer skipped")
        return []
    saved = folder / f"bm25s-{rows}"
    if not (saved / "params.index.json").exists():
        started = time.perf_counter()
        with duckdb.connect() as connection:
            texts = [
                text
                for (text,) in connection.execute(
                    f"SELECT {ti.TEXT} FROM read_parquet($path) LIMIT $rows", {"path": str(source), "rows": rows}
                ).fetchall()
            ]
        model = bm25s.BM25()
        model.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
        model.save(str(saved))
        del texts, model
        _say(f"  bm25s index over {rows:,} figures built in {time.perf_counter() - started:.0f} s (no stemmer)")
    model = bm25s.BM25.load(str(saved), mmap=True)

    def top(query: str) -> int:
        tokens = bm25s.tokenize([query], stopwords="en", show_progress=False)
        return len(model.retrieve(tokens, k=10, show_progress=False, n_threads=1)[0][0])

    return [_line(f"BM25 top-10 over {rows:,} figures: bm25s (mmap)", *_percentiles(top, QUERIES, repeat))]


def run(big: Workspace, piece: Workspace, cache_dir: Path, repeat: int) -> dict:
    """Measure and print everything; the summary lines at the end quote the goal (p50 <= 100 ms at 24M)."""
    seconds, size, figures = ensure_index(big)
    _say(
        f"  text index over {figures:,} figures: built in {seconds:.0f} s, {size / 1e9:.2f} GB "
        f"({size / figures:.0f} B/figure)"
    )
    grown, shrunk, _ = measure_incremental(big, cache_dir)
    _say(
        f"  text index incremental: +{ADDED} figures in {grown:.1f} s, -{ADDED} in {shrunk:.1f} s "
        f"(full build {seconds:.0f} s)"
    )
    results = measure_index(big, repeat, f"{figures:,} figures")
    results += measure_filtered(big, repeat, f"{figures:,} figures")
    slice_seconds, _, slice_figures = ensure_index(piece)
    source = ti.figures_parquet(piece)
    peers = measure_index(piece, repeat, f"{slice_figures:,} figures")
    peers += measure_fts(cache_dir, source, slice_figures, repeat)
    peers += measure_bm25s(cache_dir, source, slice_figures, max(1, repeat // 3))
    ours = results[0][1]
    _say(f"  text index build over {slice_figures:,} figures: {slice_seconds:.0f} s")
    for label, p50, _ in peers[1:]:
        _say(f"  {label.split(': ')[-1]:<40} vs text index at the same size: p50 {p50 / peers[0][1]:6.1f}x")
    goal = "met" if ours <= 100 else "NOT met"
    _say(
        f"BM25 top-10 at {figures:,}: p50 {ours:.1f} ms (goal <= 100 ms: {goal}); DuckDB fts at {slice_figures:,}: "
        f"{peers[1][1] if len(peers) > 1 else float('nan'):.1f} ms"
    )
    _say(f"text index update: +{ADDED} figures on {figures} in {grown:.1f} s (full build {seconds:.0f} s)")
    return {
        "figures": figures,
        "p50": ours,
        "grown": grown,
        "build": seconds,
        "bytes": size,
        "results": results + peers,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "biomedica-workbench" / "bench")
    parser.add_argument("--rows", type=int, default=24_000_000)
    parser.add_argument("--slice-rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=21)
    args = parser.parse_args()
    big = Workspace.at(args.cache_dir / f"figures-{args.rows}" / "ws")
    piece = Workspace.at(args.cache_dir / f"slice-{args.slice_rows}-of-{args.rows}" / "ws")
    for workspace in (big, piece):
        if not ti.figures_parquet(workspace).is_file():
            raise SystemExit(f"no {ti.figures_parquet(workspace)}: run benchmarks/catalog.py --rows {args.rows} first")
    run(big, piece, args.cache_dir, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
