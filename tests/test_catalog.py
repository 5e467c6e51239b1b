"""WS/catalog.duckdb: materialisation, idempotent refresh, read-only access, annotations, BM25, statistics, CLI."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
import time

import duckdb
import plotly.graph_objects as go
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from catalog_fixture import build_workspace

from workbench.annotate import Decision, LabelStore
from workbench.catalog import (
    CatalogBusy,
    CatalogMissing,
    FigureFilter,
    open_catalog,
    refresh_catalog,
)
from workbench.catalog import stats as catalog_stats
from workbench.catalog.labels import AnnotationStore
from workbench.catalog.refresh import is_stale
from workbench.cli import main
from workbench.licenses import DATA_CATALOG
from workbench.workspace import Workspace


@pytest.fixture(scope="module")
def fixture_ws(tmp_path_factory):
    built = build_workspace(tmp_path_factory.mktemp("catalog") / "ws", articles=50, seed=1)
    refresh_catalog(built.workspace, progress=False)
    return built


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_refresh_materialises_every_table(fixture_ws):
    ws = fixture_ws.workspace
    with open_catalog(ws) as catalog:
        parquet_rows = pq.ParquetFile(ws.catalog_dir / "figures.parquet").metadata.num_rows
        assert catalog.count() == fixture_ws.figures == parquet_rows
        tables = dict(
            catalog.execute(
                "SELECT table_name, estimated_size FROM duckdb_tables() WHERE database_name = 'catalog'"
            ).fetchall()
        )
        assert {"figures_delta", "figures_removed", "articles", "errors", "catalog_state"} <= set(tables)
        assert {"figure_near_duplicates", "figure_vocabulary"} <= set(tables)
        assert not {"annotations", "figure_labels"} & set(tables)  # labels are joined at query time, not cached
        assert catalog.execute("SELECT count(*) FROM articles").fetchone()[0] == fixture_ws.articles
        assert catalog.execute("SELECT count(*) FROM errors").fetchone()[0] == 1
        # `figures` is a view over native tables (the base file + the delta), never over Parquet: the locked
        # connection cannot read files at all
        views = catalog.execute(
            "SELECT view_name, sql FROM duckdb_views() WHERE database_name = 'catalog' AND NOT internal"
        ).fetchall()
        assert sorted(name for name, _ in views) == ["figures", "figures_grouped"]
        assert not any("parquet" in definition.lower() for _, definition in views)
        base = catalog.execute("SELECT count(*) FROM catalog_base.figures").fetchone()[0]
        assert base == fixture_ws.figures
        assert catalog.has_search_index


def test_refresh_is_idempotent_and_leaves_the_file_alone(fixture_ws):
    ws = fixture_ws.workspace
    before = _digest(ws.database)
    report = refresh_catalog(ws, progress=False)
    assert report.rebuilt == ()
    assert "up to date" in report.describe()
    assert _digest(ws.database) == before
    assert not is_stale(ws)


def test_refresh_follows_parquet_changes_and_annotations(tmp_path):
    built = build_workspace(tmp_path / "ws", articles=20, seed=2)
    ws = built.workspace
    assert is_stale(ws)
    first = refresh_catalog(ws, progress=False)
    assert set(first.rebuilt) == {"figures", "clusters", "near_duplicates", "articles", "errors", "search_index"}
    # figures.parquet rewritten without an extraction manifest (no units to diff): a new base
    table = pq.read_table(ws.catalog_dir / "figures.parquet")
    pq.write_table(table.slice(0, 5), ws.catalog_dir / "figures.parquet")
    assert is_stale(ws)
    second = refresh_catalog(ws, progress=False)
    assert {"figures", "search_index"} <= set(second.rebuilt) and second.figures == 5
    assert second.incremental_rows is None
    # annotation events do not make the cache stale: filters read them at query time
    key = table.column("key")[0].as_py()
    AnnotationStore(ws).add(
        [
            {
                "key": key,
                "annotator": "model-a",
                "concept": "clinical imaging/x-ray",
                "panel_type": "single",
                "score": 0.9,
            },
            {"key": key, "annotator": "model-b", "concept": "microscopy", "panel_type": "multi", "score": 0.4},
        ]
    )
    assert not is_stale(ws)
    assert refresh_catalog(ws, progress=False).rebuilt == ()
    with open_catalog(ws) as catalog:
        # label filters read the labels derived at query time (workbench.catalog.live_labels): the old rows are
        # image decisions of two annotators who disagree, so the image waits for adjudication
        assert catalog.count(FigureFilter(concepts=("clinical imaging/x-ray", "other"))) == 0
        adjudicated = Decision(
            "lead", "", "image", key, ("Clinical Imaging",), panel_type="single", action="adjudicate"
        )
        LabelStore(ws).record(adjudicated)
        assert catalog.count(FigureFilter(concepts=("Clinical Imaging", "other"))) == 1
        assert catalog.count(FigureFilter(concepts=("microscopy",))) == 0
        assert catalog.count(FigureFilter(panel_types=("single",))) == 1
        assert catalog.count() == 5


def test_open_catalog_refreshes_when_stale_and_is_read_only(tmp_path):
    built = build_workspace(tmp_path / "ws", articles=10, seed=3)
    with open_catalog(built.workspace) as catalog:  # no database yet: refreshed on open
        assert catalog.count() == built.figures
        for statement in (
            "DROP TABLE figures",
            "DELETE FROM figures",
            "INSERT INTO annotations (key, annotator) VALUES ('a', 'b')",
            "CREATE TABLE catalog.main.x AS SELECT 1",
        ):
            with pytest.raises(duckdb.Error):
                catalog.connection.execute(statement)
        # a reader never blocks a refresh: the new file is swapped in and the open reader follows it
        table = pq.read_table(built.workspace.catalog_dir / "figures.parquet")
        pq.write_table(table.slice(0, 3), built.workspace.catalog_dir / "figures.parquet")
        assert refresh_catalog(built.workspace, progress=False).figures == 3
        assert catalog.count() == 3
    assert refresh_catalog(built.workspace, progress=False).rebuilt == ()


def test_missing_catalog_is_a_clear_error(tmp_path):
    with pytest.raises(CatalogMissing, match="workbench extract"):
        open_catalog(tmp_path / "empty")
    assert main(["catalog", "count", "--workspace", str(tmp_path / "empty")]) == 2


def test_schema_of_annotations_matches_the_table(fixture_ws):
    documented = yaml.safe_load((DATA_CATALOG / "schemas" / "annotations.yaml").read_text())["columns"]
    store = AnnotationStore(fixture_ws.workspace)
    store.ensure()
    with sqlite3.connect(store.path) as connection:
        columns = [row[1] for row in connection.execute("PRAGMA table_info(annotations)").fetchall()]
    assert columns == ["id", *documented]


def test_bm25_search_ranks_and_filters(fixture_ws):
    with open_catalog(fixture_ws.workspace) as catalog:
        hits = catalog.search("tumour", limit=1000)
        assert hits and all(a.score >= b.score for a, b in zip(hits, hits[1:], strict=False))
        matching = {
            key
            for (key,) in catalog.execute(
                "SELECT key FROM figures WHERE regexp_matches(lower(caption || ' ' || article_title || ' ' || "
                "array_to_string(inline_references, ' ')), '\\btumou?rs?\\b')"
            ).fetchall()
        }
        assert {hit.key for hit in hits} == matching
        # usable as a filter, and combined with other fields
        assert catalog.count(FigureFilter(text="tumour")) == len(matching)
        commercial = catalog.search("tumour", limit=1000, selection=FigureFilter(license_groups=("commercial",)))
        assert commercial and len(commercial) == catalog.count(
            FigureFilter(text="tumour", license_groups=("commercial",))
        )
        assert catalog.search("zzzunknownword") == []
        with pytest.raises(ValueError, match="empty"):
            catalog.search("  ")


def test_text_filter_without_index_says_how_to_build_it(tmp_path):
    built = build_workspace(tmp_path / "ws", articles=8, seed=4)
    refresh_catalog(built.workspace, search_index=False, progress=False)
    with open_catalog(built.workspace, search_index=False) as catalog:
        assert not catalog.has_search_index
        with pytest.raises(ValueError, match="no full-text index"):
            catalog.count(FigureFilter(text="cells"))


def test_statistics_add_up(fixture_ws):
    selection = FigureFilter(license_groups=("commercial", "noncommercial"))
    with open_catalog(fixture_ws.workspace) as catalog:
        total = catalog.count(selection)
        summary = catalog_stats.catalog_summary(catalog, selection)
        assert summary["figures"] == total
        assert sum(n for _, n in catalog_stats.count_by(catalog, "license_group", selection)) == total
        assert sum(n for _, n in catalog_stats.count_by(catalog, "article_year", selection, top=100)) == total
        assert sum(k * n for k, n in catalog_stats.figures_per_article(catalog, selection)) == total
        assert sum(n for _, n in catalog_stats.histogram(catalog, "caption_length", selection, 25)) == total
        assert sum(n for _, _, n in catalog_stats.image_sizes(catalog, selection, 50)) == total
        mesh = dict(catalog_stats.count_by(catalog, "article_mesh_terms", selection, top=50))
        assert mesh and all(n <= total for n in mesh.values())
        with pytest.raises(ValueError, match="cannot count by"):
            catalog_stats.count_by(catalog, "caption; DROP TABLE figures")
        plots = catalog_stats.all_figures(catalog, selection)
        assert set(plots) == {
            "license_group",
            "year",
            "journal",
            "article_type",
            "mesh",
            "figures_per_article",
            "image_size",
            "caption_length",
        }
        assert all(isinstance(p, go.Figure) and p.data for p in plots.values())


def test_cli_refresh_count_stats_search(fixture_ws, capsys):
    ws = str(fixture_ws.workspace.root)
    assert main(["catalog", "refresh", "--workspace", ws, "--no-progress"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert main(["catalog", "count", "--workspace", ws, "--license-group", "commercial"]) == 0
    counted = json.loads(capsys.readouterr().out)
    with open_catalog(fixture_ws.workspace) as catalog:
        assert counted["figures"] == catalog.count(FigureFilter(license_groups=("commercial",)))
    assert main(["catalog", "stats", "--workspace", ws, "--top", "3"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["figures"] == fixture_ws.figures and len(stats["by_article_journal"]) == 3
    assert main(["catalog", "search", "--workspace", ws, "mice"]) == 0
    assert capsys.readouterr().out.strip()
    assert main(["catalog", "count", "--workspace", ws, "--where", "1=1; DROP TABLE figures"]) == 2
    assert "refused" in capsys.readouterr().err


def test_writer_elsewhere_is_reported_clearly(tmp_path):
    built = build_workspace(tmp_path / "ws", articles=5, seed=5)
    refresh_catalog(built.workspace, progress=False)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('ready', flush=True); time.sleep(30)",
            str(built.workspace.database),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(CatalogBusy, match="cannot open"):
            open_catalog(Workspace.at(built.workspace.root), refresh=False)
    finally:
        holder.kill()
        holder.wait()


def test_readers_elsewhere_never_block_a_refresh_and_a_refresh_elsewhere_never_blocks_readers(tmp_path):
    """A reader in another process does not stop the refresh; while another process refreshes, opening warns
    and reads the previous state instead of waiting."""
    built = build_workspace(tmp_path / "ws", articles=6, seed=6)
    refresh_catalog(built.workspace, search_index=False, progress=False)
    table = pq.read_table(built.workspace.catalog_dir / "figures.parquet")
    pq.write_table(table.slice(0, 2), built.workspace.catalog_dir / "figures.parquet")
    reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1], read_only=True); "
            "print('ready', flush=True); time.sleep(30)",
            str(built.workspace.database),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout.readline().strip() == "ready"
        with open_catalog(built.workspace) as catalog:
            assert catalog.count() == 2  # refreshed although another process has the file open
    finally:
        reader.kill()
        reader.wait()
    pq.write_table(table.slice(0, 1), built.workspace.catalog_dir / "figures.parquet")
    refresher = subprocess.Popen(  # holds the refresh lock as a long refresh would
        [
            sys.executable,
            "-c",
            "import sys, time; from workbench.locks import exclusive_lock\n"
            "with exclusive_lock(sys.argv[1], 'busy'):\n    print('ready', flush=True); time.sleep(30)",
            str(built.workspace.locks / "catalog-refresh.lock"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert refresher.stdout.readline().strip() == "ready"
        started = time.monotonic()
        with pytest.warns(UserWarning, match="as it is"), open_catalog(built.workspace) as catalog:
            assert catalog.count() == 2  # the previous state, at once
        assert time.monotonic() - started < 5
        with pytest.raises(CatalogBusy, match="refreshing"):
            refresh_catalog(built.workspace, progress=False, wait_s=0.2)
    finally:
        refresher.kill()
        refresher.wait()


def test_refresh_takes_mesh_from_the_current_enrichment(tmp_path):
    """A changed pubmed.parquet (enrich --reparse) reaches the catalog on refresh, whatever its row count."""
    built = build_workspace(tmp_path / "ws", articles=4, seed=9)
    ws = built.workspace
    refresh_catalog(ws, progress=False, search_index=False)
    pubmed = ws.catalog_dir / "pubmed.parquet"

    def publish(terms: list[str]) -> None:
        pq.write_table(pa.table({"pmid": ["2000000"], "mesh_terms": [terms]}), pubmed)

    publish(["Humans", "Neoplasms"])
    assert is_stale(ws)
    refresh_catalog(ws, progress=False, search_index=False)
    with open_catalog(ws, refresh=False) as catalog:
        rows = catalog.execute("SELECT DISTINCT article_mesh_terms FROM figures WHERE pmid = '2000000'").fetchall()
        assert rows == [(["Humans", "Neoplasms"],)]
        publish(["Humans", "Mice"])  # same row count, new content
        assert is_stale(ws)
        assert "figures" in refresh_catalog(ws, progress=False, search_index=False).rebuilt
        rows = catalog.execute("SELECT DISTINCT article_mesh_terms FROM figures WHERE pmid = '2000000'").fetchall()
        assert rows == [(["Humans", "Mice"],)]  # the open reader follows
        article_figures = catalog.execute("SELECT count(*) FROM figures WHERE pmid = '2000000'").fetchone()[0]
        assert catalog.count(FigureFilter(mesh_terms=("mice",))) >= article_figures > 0


def test_readers_are_bounded(fixture_ws):
    with open_catalog(fixture_ws.workspace, refresh=False) as catalog:
        settings = dict(
            catalog.execute(
                "SELECT name, value FROM duckdb_settings() WHERE name IN ('threads', 'enable_external_access')"
            ).fetchall()
        )
        assert settings == {"threads": "2", "enable_external_access": "false"}
        limit = catalog.execute("SELECT current_setting('memory_limit')").fetchone()[0]
        assert (
            limit.endswith(("MiB", "GiB", "MB", "GB"))
            and limit != duckdb.connect().execute("SELECT current_setting('memory_limit')").fetchone()[0]
        )  # not DuckDB's default (80% of the machine)
        with pytest.raises(duckdb.Error):
            catalog.connection.execute("SET memory_limit = '100GB'")


def test_a_damaged_cache_is_rebuilt(tmp_path):
    built = build_workspace(tmp_path / "ws", articles=3, seed=10)
    refresh_catalog(built.workspace, progress=False, search_index=False)
    built.workspace.database.write_bytes(b"not a database")
    assert is_stale(built.workspace)
    with open_catalog(built.workspace, search_index=False) as catalog:
        assert catalog.count() == built.figures
