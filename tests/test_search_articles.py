"""The `articles` list: a BM25 index of full article text (WS/indexes/articles) built by `workbench index`, its
figures in the fused search with ranks["articles"], filters without lost recall, incremental updates, HTTP and ask."""

from __future__ import annotations

import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("faiss")
pytest.importorskip("open_clip")

from search_fixture import SearchWorkspace, build_search_workspace  # noqa: E402

from workbench.catalog import FigureFilter, open_catalog  # noqa: E402
from workbench.cli import main  # noqa: E402
from workbench.search import query as search_query  # noqa: E402
from workbench.search.articles import ArticleIndex, index_root, update_article_index  # noqa: E402
from workbench.search.query import SearchEngine, SearchRequest, figure_order  # noqa: E402
from workbench.workspace import Workspace  # noqa: E402

BODY_ONLY = "quorvantide"  # planted in one article's body: no caption, in-line reference or title holds it
SHARED = "zelmorphic"  # planted in the bodies of articles of both licence groups


def _plant(path, edits: dict[str, str], drop: tuple[str, ...] = (), add: dict[str, str] | None = None) -> None:
    """Rewrite articles.parquet: append words to the text of `edits`, drop `drop`, add new articles `add`."""
    table = pq.read_table(path)
    rows = [row for row in table.to_pylist() if row["pmcid"] not in drop]
    for row in rows:
        if row["pmcid"] in edits:
            row["text"] = f"{row['text']}\nThe {edits[row['pmcid']]} assay was repeated twice."
    for pmcid, text in (add or {}).items():
        rows.append(dict(rows[0], pmcid=pmcid, title="A new article", abstract="", text=text))
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), path)


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> tuple[SearchWorkspace, dict]:
    made = build_search_workspace(tmp_path_factory.mktemp("articles"), index=False)
    with open_catalog(made.root) as catalog:
        groups = catalog.execute("SELECT pmcid, any_value(license_group), count(*) FROM figures GROUP BY 1").fetchall()
    by_group: dict[str, list[str]] = {}
    for pmcid, group, _count in sorted(groups, key=lambda row: (-row[2], row[0])):
        by_group.setdefault(group, []).append(pmcid)
    assert {"commercial", "noncommercial"} <= set(by_group), by_group
    planted = {
        "body": by_group["commercial"][0],  # the article with the most figures of its group
        "shared": [by_group["commercial"][1], by_group["noncommercial"][0]],
    }
    edits = {planted["body"]: BODY_ONLY, **dict.fromkeys(planted["shared"], SHARED)}
    _plant(Workspace.at(made.root).catalog_dir / "articles.parquet", edits)
    assert main(["index", "--workspace", str(made.root), "--embeddings", made.embeddings, "--no-progress"]) == 0
    return made, planted


@pytest.fixture(scope="module")
def engine(made):
    with SearchEngine.open(made[0].root, made[0].embeddings) as opened:
        yield opened


def _figures(root, pmcid: str) -> list[str]:
    with open_catalog(root) as catalog:
        keys = [key for (key,) in catalog.execute("SELECT key FROM figures WHERE pmcid = ?", [pmcid]).fetchall()]
    return sorted(keys, key=figure_order)


def test_index_builds_the_article_index_and_a_rerun_is_a_no_op(made, capsys):
    ws, _ = made
    workspace = Workspace.at(ws.root)
    articles = pq.read_metadata(workspace.catalog_dir / "articles.parquet").num_rows
    assert ArticleIndex.open(workspace).num_docs() == articles
    before = {p.name: p.stat().st_mtime_ns for p in index_root(workspace).rglob("*")}
    assert main(["index", "--workspace", str(ws.root), "--embeddings", ws.embeddings, "--no-progress"]) == 0
    assert f"article index up to date: {articles:,} articles" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in index_root(workspace).rglob("*")} == before


def test_a_word_only_in_an_article_body_finds_that_articles_figures(made, engine):
    ws, planted = made
    expected = _figures(ws.root, planted["body"])
    with open_catalog(ws.root) as catalog:
        assert catalog.search(BODY_ONLY, 10) == []  # not in any caption, in-line reference or title
    only = engine.search(SearchRequest(text=f"the {BODY_ONLY}", k=50, lists=("articles",)))
    assert [r.key for r in only.results] == expected  # consecutive ranks, in figure order
    assert [r.ranks for r in only.results] == [{"articles": rank} for rank in range(1, len(expected) + 1)]
    assert {r.pmcid for r in only.results} == {planted["body"]}
    fused = engine.search(SearchRequest(text=BODY_ONLY, k=engine.index.rows))
    assert set(fused.lists) == {"images", "captions", "bm25", "articles"}
    assert fused.lists["bm25"] == 0 and fused.lists["articles"] == len(expected)
    assert {r.key for r in fused.results if "articles" in r.ranks} == set(expected)
    assert "articles" in fused.timings_ms


def test_filters_hold_and_lose_nothing_at_any_batch_size(made, engine, monkeypatch):
    ws, planted = made
    commercial, noncommercial = planted["shared"]
    for group, pmcid in (("commercial", commercial), ("noncommercial", noncommercial)):
        selection = FigureFilter(license_groups=(group,))
        found = engine.search(SearchRequest(text=SHARED, k=50, lists=("articles",), filter=selection)).results
        assert [r.key for r in found] == _figures(ws.root, pmcid)
        assert {r.license_group for r in found} == {group}
    # A common word with a small selection: growing article batches find what one big batch finds.
    selection = FigureFilter(license_groups=("noncommercial",))
    with open_catalog(ws.root) as catalog:
        wanted = catalog.count(selection)
    assert wanted > 0
    lists = {}
    for first in (1, 10_000):
        monkeypatch.setattr(search_query, "ARTICLES_FIRST_BATCH", first)
        lists[first] = engine.article_list("participants analysis", wanted, selection)
    assert lists[1] == lists[10_000] and len(lists[1]) > 1
    with open_catalog(ws.root) as catalog:
        rows = catalog.execute("SELECT key FROM figures WHERE license_group = ?", ["noncommercial"]).fetchall()
    assert set(lists[1]) <= {key for (key,) in rows}


def test_incremental_update_adds_new_and_removes_gone_articles(made, tmp_path):
    ws, planted = made
    root = tmp_path / "ws"
    shutil.copytree(ws.root, root)
    workspace = Workspace.at(root)
    path = workspace.catalog_dir / "articles.parquet"
    before = ArticleIndex.open(workspace).num_docs()
    _plant(path, {planted["shared"][0]: "glimmerase"}, drop=(planted["body"],), add={"PMC999000001": "A vortiline."})
    report = update_article_index(workspace, progress=False)
    assert (report.added, report.deleted, report.rebuilt) == (2, 1, False)  # the new one and the edited one
    index = ArticleIndex.open(workspace)
    assert index.num_docs() == before
    assert index.ranked("vortiline", 5).pmcids == ["PMC999000001"]
    assert index.ranked(BODY_ONLY, 5).pmcids == []
    assert index.ranked("glimmerase", 5).pmcids == [planted["shared"][0]]
    again = update_article_index(workspace, progress=False)
    assert (again.added, again.deleted, again.rebuilt) == (0, 0, False)
    fresh = update_article_index(workspace, full=True, progress=False)
    assert fresh.rebuilt and ArticleIndex.open(workspace).num_docs() == index.num_docs()
    assert ArticleIndex.open(workspace).ranked("glimmerase", 5).pmcids == [planted["shared"][0]]


def test_an_update_killed_after_its_commit_is_redone(made, tmp_path):
    ws, planted = made
    root = tmp_path / "ws"
    shutil.copytree(ws.root, root)
    workspace = Workspace.at(root)
    docs, state = index_root(workspace) / "docs.parquet", index_root(workspace) / "state.json"
    stale = docs.read_bytes(), state.read_bytes()
    _plant(workspace.catalog_dir / "articles.parquet", {}, add={"PMC999000002": "A plexaroid."})
    assert update_article_index(workspace, progress=False).added == 1
    docs.write_bytes(stale[0])  # as if killed between the tantivy commit and docs.parquet
    state.write_bytes(stale[1])
    assert update_article_index(workspace, progress=False).added == 1  # redone: deleted by pmcid, added again
    assert ArticleIndex.open(workspace).ranked("plexaroid", 5).pmcids == ["PMC999000002"]
    assert (
        ArticleIndex.open(workspace).num_docs() == pq.read_metadata(workspace.catalog_dir / "articles.parquet").num_rows
    )


def test_stored_figure_keys_are_used_only_while_figures_parquet_is_unchanged(made, tmp_path):
    ws, planted = made
    root = tmp_path / "ws"
    shutil.copytree(ws.root, root)
    workspace = Workspace.at(root)
    everything = FigureFilter(min_width=0)  # selects every figure, through the catalog
    with SearchEngine.open(root, ws.embeddings) as engine:
        index = engine.article_index()
        assert index is not None and index.keys_current()
        stored = engine.article_list("participants", 500, FigureFilter())
        assert stored == engine.article_list("participants", 500, everything) and len(stored) > 10
        figures = workspace.catalog_dir / "figures.parquet"
        pq.write_table(pq.read_table(figures), figures)  # rewritten: the stored keys may be stale
        assert not index.keys_current()
        assert engine.article_list("participants", 500, FigureFilter()) == stored  # from the catalog instead
        report = update_article_index(workspace, progress=False)
        assert (report.added, report.deleted) == (0, 0) and index.keys_current()


def test_a_workspace_without_the_index_has_an_empty_articles_list(made, tmp_path):
    ws, _ = made
    root = tmp_path / "ws"
    shutil.copytree(ws.root, root, ignore=shutil.ignore_patterns("articles"))
    with SearchEngine.open(root, ws.embeddings) as engine:
        response = engine.search(SearchRequest(text=BODY_ONLY, k=5))
        assert response.lists["articles"] == 0 and response.results  # the other lists still answer


def test_http_search_accepts_the_list_and_metrics_time_it(made, engine):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from workbench.serve.app import create_app

    ws, planted = made
    with TestClient(create_app(engine)) as client:
        reply = client.post("/search", json={"text": BODY_ONLY, "k": 50, "lists": ["articles"]})
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert set(body) == {"results", "timings_ms", "lists", "filter_strategy"}
        assert [r["key"] for r in body["results"]] == _figures(ws.root, planted["body"])
        assert all(set(r["ranks"]) == {"articles"} for r in body["results"])
        assert 'workbench_search_stage_ms_count{stage="articles"}' in client.get("/metrics").text


def test_ask_takes_passages_from_articles_the_article_list_finds(made, engine):
    from workbench.rag.retrieve import retrieve

    ws, planted = made
    question = f"What was repeated in the {BODY_ONLY} assay?"
    sources = retrieve(engine, question, figures=1, passage_count=2, articles=2)
    passages = [s for s in sources if s.kind == "passage"]
    assert any(s.pmcid == planted["body"] and BODY_ONLY in s.text for s in passages)
    with open_catalog(ws.root) as catalog:
        known = {pmcid for (pmcid,) in catalog.execute("SELECT pmcid FROM articles").fetchall()}
    assert {s.pmcid for s in sources} <= known
