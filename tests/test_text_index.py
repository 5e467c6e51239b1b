"""The BM25 text index (WS/indexes/text): incremental updates equal a full rebuild, filters combine exactly,
readers follow commits, an interrupted update is redone, and refresh keeps the index current."""

from __future__ import annotations

import math
import shutil

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from catalog_fixture import build_workspace

from workbench.catalog import FigureFilter, fts, open_catalog, refresh_catalog
from workbench.catalog import textindex as ti
from workbench.workspace import Workspace

QUERIES = [("tumour cells", "any"), ("tumour brain", "all"), ("scale bar", "phrase"), ("mice", "any"), ("CT", "any")]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build_workspace(tmp_path_factory.mktemp("text") / "ws", articles=40, seed=23)


def _copy(built, tmp_path, name="ws") -> Workspace:
    target = tmp_path / name
    shutil.copytree(built.workspace.root, target, ignore=shutil.ignore_patterns("indexes", "catalog.duckdb*"))
    return Workspace.at(target)


def _edit(workspace: Workspace) -> None:
    """Drop 5 figures, rewrite the caption of 5 (re-extracted: a new place in the shards), add 6 new ones."""
    path = workspace.catalog_dir / "figures.parquet"
    table = pq.read_table(path)
    keep = table.slice(5)
    rows = keep.to_pylist()
    for row in rows[:5]:
        row["caption"] = "Kaplan Meier survival of treated mice, zzzchanged."
        row["caption_length"] = len(row["caption"])
        row["txt_offset"] += 1_000_000
    added = [
        dict(row, key=row["key"] + "_new", caption=f"Brand new tumour panel {i}.") for i, row in enumerate(rows[:6])
    ]
    pq.write_table(pa.Table.from_pylist(rows + added, schema=table.schema), path)


def _results(workspace: Workspace) -> dict:
    index = ti.TextIndex.open(workspace)
    out = {}
    for text, mode in QUERIES:
        found = index.matches(text, mode)
        out[(text, mode)] = (sorted(found.key_hashes), len(found.scores), index.top(text, 5, mode))
    out["docs"] = index.num_docs()
    return out


def test_incremental_update_equals_full_rebuild(built, tmp_path):
    incremental, full = _copy(built, tmp_path, "a"), _copy(built, tmp_path, "b")
    first = ti.update_text_index(incremental, progress=False)
    assert first.rebuilt and first.documents == built.figures
    assert ti.update_text_index(incremental, progress=False).added == 0  # idempotent: nothing to do
    for workspace in (incremental, full):
        _edit(workspace)
    report = ti.update_text_index(incremental, progress=False)
    assert (report.rebuilt, report.added, report.deleted) == (False, 5 + 6, 5)
    assert ti.update_text_index(full, progress=False, full=True).rebuilt
    ours, theirs = _results(incremental), _results(full)
    assert ours["docs"] == theirs["docs"] == built.figures - 5 + 6
    for query in QUERIES:
        (hashes, total, top), (their_hashes, their_total, their_top) = ours[query], theirs[query]
        assert hashes == their_hashes and total == their_total
        # deleted documents count in tantivy's BM25 statistics until their segment is merged: scores stay close
        for (_, score), (_, their_score) in zip(top, their_top, strict=True):
            assert math.isclose(score, their_score, rel_tol=0.15)
    assert ti.search_text(incremental, "zzzchanged", 10) and len(ti.search_text(incremental, "brand", 10)) == 6


def test_an_update_interrupted_after_its_commit_is_redone(built, tmp_path):
    workspace = _copy(built, tmp_path)
    ti.update_text_index(workspace, progress=False)
    root = ti.index_root(workspace)
    saved = {name: (root / name).read_bytes() for name in ("docs.parquet", "state.json")}
    _edit(workspace)
    ti.update_text_index(workspace, progress=False)
    for name, data in saved.items():  # killed after the tantivy commit, before docs.parquet and state.json
        (root / name).write_bytes(data)
    assert not ti.is_current(workspace)
    ti.update_text_index(workspace, progress=False)
    assert ti.TextIndex.open(workspace).num_docs() == built.figures - 5 + 6  # nothing indexed twice
    assert len(ti.search_text(workspace, "brand", 100)) == 6


def test_a_reader_sees_each_commit_and_search_text_ranks(built, tmp_path):
    workspace = _copy(built, tmp_path)
    ti.update_text_index(workspace, progress=False)
    reader = ti.TextIndex.open(workspace)
    before = reader.top("zzzchanged", 10)
    _edit(workspace)
    ti.update_text_index(workspace, progress=False)
    after = reader.top("zzzchanged", 10)
    assert before == [] and len(after) == 5
    ti.update_text_index(workspace, progress=False, full=True)  # a rebuild swaps in a new folder
    assert {key for key, _ in reader.top("zzzchanged", 10)} == {key for key, _ in after}
    hits = ti.search_text(workspace, "tumour cells", 10)
    assert hits and all(a[1] >= b[1] for a, b in zip(hits, hits[1:], strict=False))
    assert all(isinstance(key, str) and isinstance(score, float) for key, score in hits)
    assert ti.search_text(workspace, "the of and", 10) == []  # stop words only
    with pytest.raises(ti.TextIndexMissing):
        ti.search_text(_copy(built, tmp_path, "bare"), "cells")


@pytest.mark.parametrize("first_batch", [1, 1000])
def test_search_with_filters_is_exact_at_any_batch_size(built, tmp_path, monkeypatch, first_batch):
    """The ranked batches grow until `limit` figures pass the filter: same answer as ranking the filtered set."""
    monkeypatch.setattr(fts, "FIRST_BATCH", first_batch)
    workspace = _copy(built, tmp_path)
    refresh_catalog(workspace, progress=False)
    table = pq.read_table(workspace.catalog_dir / "figures.parquet")
    commercial = set(table.filter(pc.equal(table["license_group"], "commercial"))["key"].to_pylist())
    selection = FigureFilter(license_groups=("commercial",))
    with open_catalog(workspace) as catalog:
        for text, mode in QUERIES:
            everything = catalog.search(text, 10_000, mode=mode)
            expected = [hit.key for hit in everything if hit.key in commercial][:3]
            got = catalog.search(text, 3, selection, mode=mode)
            assert [hit.key for hit in got] == expected, (text, mode)
            assert catalog.count(FigureFilter(text=text, text_mode=mode, license_groups=("commercial",))) == len(
                [hit for hit in everything if hit.key in commercial]
            )


def test_refresh_keeps_the_index_current_and_drops_nothing_else(built, tmp_path):
    workspace = _copy(built, tmp_path)
    report = refresh_catalog(workspace, progress=False)
    assert report.search_index and ti.is_current(workspace)
    with open_catalog(workspace) as catalog:
        assert not catalog.execute("SELECT count(*) FROM duckdb_schemas() WHERE schema_name LIKE 'fts_%'").fetchone()[0]
    _edit(workspace)
    with open_catalog(workspace) as catalog:  # stale: refreshed on open, the index incrementally
        assert len(catalog.search("brand", 100)) == 6
        assert catalog.count(FigureFilter(text="zzzchanged")) == 5
    assert ti.is_current(workspace)
    assert "search_index" not in refresh_catalog(workspace, progress=False).rebuilt  # nothing to do
