"""Label-to-filter benchmark (issue 13 item 2), called from benchmarks/catalog.py on its big catalog.

Labels every cluster of a current clustering (a synthetic one, `bench<K>`, as benchmarks/catalog.py writes it,
when the workspace has none) with a taxonomy concept (Zipf-like: a few concepts cover most clusters) plus 1,000
per-image overrides, through the label store (`workbench.annotate`). Then measures, through the public API:
- filtered counts with `concepts` (the labels joined at query time) next to the same counts without them, and a
  DuckDB view over the Parquet files joining assignments and cluster labels (the peer, same run);
- label to filter: from `LabelStore.record` of a new cluster decision until `Catalog.count` reflects it (no
  refresh), median over several decisions.

    .venv/bin/python benchmarks/catalog_labels.py --workspace WS   # alone, on any workspace with figures
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from workbench.annotate import Decision, LabelStore, current_labels, load_taxonomy  # noqa: E402
from workbench.annotate.io import fresh_decisions  # noqa: E402
from workbench.catalog import Catalog, FigureFilter, open_catalog, refresh_catalog  # noqa: E402
from workbench.catalog.layers import MANIFEST  # noqa: E402
from workbench.cluster.assign import assignments_path, current_clustering, table_path  # noqa: E402
from workbench.extract.catalog import part_path  # noqa: E402
from workbench.fileio import read_json, write_json_atomically  # noqa: E402
from workbench.workspace import Workspace  # noqa: E402

ANNOTATOR = "bench-expert"
CONCEPT = "Microscopy"
OVERRIDES = 1000
PEER_COUNT = """
SELECT (SELECT count(*) FROM read_parquet($figures) AS f
        JOIN read_parquet($assignments) AS a USING (key)
        JOIN labels AS l ON l.cluster_id = a.cluster_id
        WHERE list_contains(l.global_concepts, $concept) AND f.key NOT IN (SELECT key FROM overrides) {extra})
     + (SELECT count(*) FROM read_parquet($figures) AS f JOIN overrides AS o USING (key)
        WHERE list_contains(o.global_concepts, $concept) {extra})"""
TYPICAL = (
    "AND f.license_group = 'commercial' AND f.article_year BETWEEN 2015 AND 2020 AND f.width >= 512 AND f.height >= 512"
)


def _say(text: str) -> None:
    print(text, flush=True)


def _latency(run: Callable[[], object], repeat: int) -> tuple[float, float, object]:
    started = time.perf_counter()
    result = run()
    cold = (time.perf_counter() - started) * 1000
    _say(f"    (first call: {cold:.1f} ms; then the reader keeps what does not depend on the labels)")
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    times.sort()
    return statistics.median(times) * 1000, times[min(len(times) - 1, round(0.95 * (len(times) - 1)))] * 1000, result


def figure_files(workspace: Workspace) -> list[str]:
    """The Parquet files holding the catalog's figures: the extraction units' parts (an incremental extract adds
    some), else figures.parquet."""
    manifest = read_json(workspace.catalog_dir / MANIFEST, default=dict)
    parts = [str(part_path(workspace, "figures", unit)) for unit in manifest.get("units") or []]
    return parts or [str(workspace.catalog_dir / "figures.parquet")]


def _delay(catalog: Catalog, store: LabelStore, selection: FigureFilter, decision: Decision) -> float:
    """Milliseconds from recording `decision` until `catalog.count(selection)` changes; then undone (re-runs
    measure the same thing)."""
    before = catalog.count(selection)
    started = time.perf_counter()
    store.record(decision)
    while catalog.count(selection) == before:
        if time.perf_counter() - started > 60:
            raise RuntimeError("a label did not reach the filter within 60 s")
    delay = (time.perf_counter() - started) * 1000
    store.undo(decision.annotator, decision.clustering, decision.target)
    return delay


def write_synthetic_clustering(workspace: Workspace, clusters: int, memory_limit: str) -> str:
    """Write (once) a synthetic clustering `benchCLUSTERS` (cluster = hash of the key) and make it current."""
    name = f"bench{clusters}"
    folder = workspace.catalog_dir / "clusters"
    folder.mkdir(parents=True, exist_ok=True)
    figures = str(workspace.catalog_dir / "figures.parquet").replace("'", "''")
    assignments = str(assignments_path(workspace, name)).replace("'", "''")
    table = str(table_path(workspace, name)).replace("'", "''")
    if not assignments_path(workspace, name).exists():
        with duckdb.connect(config={"memory_limit": memory_limit}) as connection:
            connection.execute(
                f"COPY (SELECT key, (hash(key, 99) % {clusters})::INTEGER AS cluster_id, "
                f"(hash(key, 98) % 1000 / 1000.0)::FLOAT AS distance FROM read_parquet('{figures}')) "
                f"TO '{assignments}' (FORMAT parquet)"
            )
            connection.execute(
                f"COPY (SELECT cluster_id, count(*)::BIGINT AS size, list(key ORDER BY distance)[:3] AS medoid_keys, "
                f"'cluster ' || cluster_id AS name FROM read_parquet('{assignments}') GROUP BY cluster_id "
                f"ORDER BY cluster_id) TO '{table}' (FORMAT parquet)"
            )
    write_json_atomically({"name": name}, folder / "current.json")
    return name


def ensure_clustering(workspace: Workspace, clusters: int = 2000, memory_limit: str = "6GB") -> str:
    """The current clustering, else a synthetic one (hash of the key, as benchmarks/catalog.py writes) entered by a
    refresh."""
    name = current_clustering(workspace)
    if name:
        return name
    name = write_synthetic_clustering(workspace, clusters, memory_limit)
    started = time.perf_counter()
    refresh_catalog(workspace, search_index=False, progress=False, memory_limit=memory_limit)
    _say(f"  synthetic clustering {name} entered the catalog in {time.perf_counter() - started:.0f} s")
    return name


def label_clusters(workspace: Workspace, clustering: str) -> int:
    """One decision per cluster (Zipf-like concepts) and OVERRIDES image decisions; only what is not standing yet
    is recorded, so re-runs add nothing. Returns the decisions recorded."""
    taxonomy = load_taxonomy()
    ids = sorted(pq.read_table(table_path(workspace, clustering), columns=["cluster_id"]).column(0).to_pylist())
    ranked = [CONCEPT, "Plots and Charts", "Clinical Imaging", *[g for g in taxonomy.globals if g not in
              (CONCEPT, "Plots and Charts", "Clinical Imaging")]]  # fmt: skip
    decisions = []
    for cid in ids:
        concept = ranked[min(len(ranked) - 1, int((cid * 2654435761 % 1000) / 1000 * len(ranked)) ** 2 // len(ranked))]
        local = taxonomy.locals[concept][0]
        decisions.append(Decision(ANNOTATOR, clustering, "cluster", str(cid), (concept,), (local,), "single"))
    keys = pq.read_table(assignments_path(workspace, clustering), columns=["key"]).column(0)
    overrides = min(OVERRIDES, len(keys) // 100)  # a small share of the images, as experts fix single images
    step = max(1, len(keys) // max(1, overrides))
    for key in keys.slice(0, step * overrides).to_pylist()[::step]:
        decisions.append(Decision(ANNOTATOR, clustering, "image", key, ("Maps",), ("map",), "single"))
    store = LabelStore(workspace)
    fresh = fresh_decisions(store, clustering, decisions)
    started = time.perf_counter()
    store.record_many(fresh)
    if fresh:
        _say(f"  recorded {len(fresh):,} decisions ({len(ids):,} clusters, {overrides:,} images) in "
             f"{time.perf_counter() - started:.1f} s")  # fmt: skip
    return len(fresh)


def measure(workspace: Workspace, repeat: int = 21, trials: int = 7) -> dict[str, object]:
    """Filtered counts with labels joined at query time, the peer, and label-to-filter latency (ms)."""
    clustering = ensure_clustering(workspace)
    label_clusters(workspace, clustering)
    store = LabelStore(workspace)
    labels = current_labels(store, clustering)
    typical = FigureFilter(
        license_groups=("commercial",), year_from=2015, year_to=2020, concepts=(CONCEPT,), min_width=512, min_height=512
    )
    arrow = pa.table(
        {
            "cluster_id": pa.array(list(labels.clusters), pa.int32()),
            "global_concepts": pa.array([list(label.global_concepts) for label in labels.clusters.values()]),
        }
    )
    overrides = pa.table(
        {
            "key": pa.array(list(labels.images), pa.string()),
            "global_concepts": pa.array([list(label.global_concepts) for label in labels.images.values()]),
        }
    )
    peer = duckdb.connect()
    peer.register("labels", arrow)
    peer.register("overrides", overrides)
    files = {
        "figures": figure_files(workspace),
        "assignments": str(assignments_path(workspace, clustering)),
        "concept": CONCEPT,
    }
    results = []
    with open_catalog(workspace, refresh=False) as catalog:
        concept_only = FigureFilter(concepts=(CONCEPT,))
        questions: list[tuple[str, Callable[[], object]]] = [
            ("count concept (labels joined at query time): workbench", lambda: catalog.count(concept_only)),
            ("count licence+year+concept+size: workbench", lambda: catalog.count(typical)),
            ("count panel type: workbench", lambda: catalog.count(FigureFilter(panel_types=("single",)))),
            (
                "count concept: DuckDB view over Parquet + label join",
                lambda: peer.execute(PEER_COUNT.format(extra=""), files).fetchone()[0],
            ),
            (
                "count licence+year+concept+size: DuckDB view over Parquet + label join",
                lambda: peer.execute(PEER_COUNT.format(extra=TYPICAL), files).fetchone()[0],
            ),
        ]
        for label, run in questions:
            p50, p95, value = _latency(run, repeat)
            results.append((label, p50, p95, str(value)))
            _say(f"  {label:<74} p50 {p50:8.1f} ms  p95 {p95:8.1f} ms  -> {value}")
        others = [cid for cid, label in sorted(labels.clusters.items()) if CONCEPT not in label.global_concepts]
        selection = FigureFilter(concepts=(CONCEPT,))
        cluster_delays = [
            _delay(catalog, store, selection, Decision(ANNOTATOR, clustering, "cluster", str(cid), (CONCEPT,)))
            for cid in others[:trials]
        ]
        image_delays = []  # an image's own label: its row is looked up once (a narrow scan of the key column)
        for cid in others[trials : trials + 3]:
            found = catalog.execute("SELECT key FROM figures WHERE cluster_id = ? LIMIT 20", [cid]).fetchall()
            key = next(key for (key,) in found if key not in labels.images)
            decision = Decision(ANNOTATOR, clustering, "image", key, (CONCEPT,))
            image_delays.append(_delay(catalog, store, selection, decision))
    peer.close()
    cluster_ms = statistics.median(cluster_delays) if cluster_delays else float("nan")
    image_ms = statistics.median(image_delays) if image_delays else float("nan")
    _say(f"  label to filter (record -> count reflects it, no refresh): a cluster's label, median of "
         f"{len(cluster_delays)}: {cluster_ms:.0f} ms; an image's own label, median of {len(image_delays)}: "
         f"{image_ms:.0f} ms")  # fmt: skip
    label_ms = max(cluster_ms, image_ms)
    return {"filters": results, "label_to_filter_ms": label_ms}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", type=Path, required=True, help="a workspace with an extracted catalog")
    parser.add_argument("--repeat", type=int, default=21, help="timed runs per query")
    args = parser.parse_args()
    result = measure(Workspace.at(args.workspace), args.repeat)
    _say(f"label to filter: {result['label_to_filter_ms']:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
