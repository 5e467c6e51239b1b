"""`workbench index` and the query API: exact and IVF indexes, incremental updates, lists, RRF, filters."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("faiss")
pytest.importorskip("open_clip")

from search_fixture import SearchWorkspace, build_search_workspace  # noqa: E402

from workbench.catalog import FigureFilter, open_catalog  # noqa: E402
from workbench.cli import main  # noqa: E402
from workbench.errors import UserError  # noqa: E402
from workbench.search.fusion import rrf  # noqa: E402
from workbench.search.index import IndexConfig, build_index, open_index  # noqa: E402
from workbench.search.query import SearchEngine, SearchRequest  # noqa: E402
from workbench.ustar import MemberLocation, read_member  # noqa: E402
from workbench.workspace import Workspace  # noqa: E402


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> SearchWorkspace:
    return build_search_workspace(tmp_path_factory.mktemp("search"))


@pytest.fixture(scope="module")
def engine(made):
    with SearchEngine.open(made.root, made.embeddings) as opened:
        yield opened


def _jpeg(root: Path, row: dict) -> bytes:
    return read_member(root / row["shard"], MemberLocation(row["jpg_offset"], row["jpg_size"]))


def test_rrf_sums_reciprocal_ranks_and_keeps_each_lists_rank():
    fused = rrf({"a": ["x", "y", "z"], "b": ["y", "w"]}, k=60)
    assert [item.key for item in fused] == ["y", "x", "w", "z"]
    assert fused[0].score == pytest.approx(1 / 62 + 1 / 61)
    assert fused[0].ranks == {"a": 2, "b": 1}
    assert [item.key for item in rrf({"a": ["x", "y"]}, k=0, limit=1)] == ["x"]


def test_index_is_exact_for_small_sets_memory_mapped_and_records_its_parameters(made):
    index = open_index(Workspace.at(made.root), made.embeddings)
    with open_catalog(made.root) as catalog:
        assert index.rows == catalog.count()
    assert set(index.towers) == {"image", "text"}
    assert index.manifest["towers"]["image"]["factory"] == "Flat"
    assert index.manifest["towers"]["image"]["kind"] == "exact"
    assert index.manifest["config"]["flat_max_rows"] == 200_000
    assert isinstance(index.keys, np.memmap)


def test_incremental_index_adds_only_new_shards_and_equals_a_fresh_build(made, tmp_path):
    root = tmp_path / "ws"
    shutil.copytree(made.root, root, ignore=shutil.ignore_patterns("indexes"))
    folder = root / "embeddings" / made.embeddings
    last = sorted(folder.glob("*.done.json"))[-1]
    hidden = last.with_suffix(".hidden")
    last.rename(hidden)
    workspace = Workspace.at(root)
    first = build_index(workspace, made.embeddings)
    assert first.rebuilt
    hidden.rename(last)
    second = build_index(workspace, made.embeddings)
    assert not second.rebuilt and second.added_rows == len(
        folder.joinpath(last.name.split(".")[0] + ".keys.txt").read_text().splitlines()
    )
    assert build_index(workspace, made.embeddings).added_rows == 0
    grown, fresh = open_index(workspace, made.embeddings), open_index(Workspace.at(made.root), made.embeddings)
    assert [grown.key(i) for i in range(grown.rows)] == [fresh.key(i) for i in range(fresh.rows)]
    query = np.asarray(fresh.indexes["image"].reconstruct(3))
    assert list(grown.search("image", query, 5)[1]) == list(fresh.search("image", query, 5)[1])
    assert sorted(p.name for p in (root / "indexes" / made.embeddings).iterdir()) == [
        "image.2.faiss",
        "index.json",
        "keys.2.npy",
        "text.2.faiss",
    ]


def test_large_sets_get_an_approximate_ivf_index(made, tmp_path):
    root = tmp_path / "ws"
    shutil.copytree(made.root, root, ignore=shutil.ignore_patterns("indexes"))
    report = build_index(Workspace.at(root), made.embeddings, IndexConfig(flat_max_rows=10, nlist=4, nprobe=4))
    assert report.towers == {"image": "IVF4,SQ8", "text": "IVF4,SQ8"}
    index = open_index(Workspace.at(root), made.embeddings)
    assert index.manifest["towers"]["image"]["kind"] == "approximate"
    assert index.manifest["towers"]["image"]["nprobe"] == 4
    query = np.asarray(open_index(Workspace.at(made.root), made.embeddings).indexes["image"].reconstruct(0))
    _, rows = index.search("image", query, 1)
    assert index.key(int(rows[0])) == open_index(Workspace.at(made.root), made.embeddings).key(0)


def test_image_query_returns_that_image_first(made, engine):
    with open_catalog(made.root) as catalog:
        row = catalog.preview(limit=5)[3]
    response = engine.search(SearchRequest(image=_jpeg(made.root, row), k=5))
    top = response.results[0]
    assert top.key == row["key"] and top.ranks["similar_images"] == 1
    assert top.pmcid == row["pmcid"] and top.caption == row["caption"]
    assert (top.shard, top.jpg_offset, top.jpg_size) == (row["shard"], row["jpg_offset"], row["jpg_size"])
    assert {"encode_image", "vectors_similar_images", "total"} <= set(response.timings_ms)


def test_text_query_uses_the_text_tower_and_bm25_then_fuses(made, engine):
    response = engine.search(SearchRequest(text="microscopy", k=20, candidates=50))
    assert set(response.lists) == {"images", "captions", "bm25", "articles"}
    assert response.lists["bm25"] > 0  # `workbench index` built the catalog's BM25 index
    assert engine.search(SearchRequest(text="participants", k=5)).lists["articles"] > 0  # article text is indexed
    assert response.lists["images"] == 50 or response.lists["images"] == engine.index.rows
    assert all(set(result.ranks) <= {"images", "captions", "bm25", "articles"} for result in response.results)
    assert response.results == sorted(response.results, key=lambda r: -r.score)
    only = engine.search(SearchRequest(text="microscopy", k=5, lists=("images",)))
    assert all(set(result.ranks) == {"images"} for result in only.results)


@pytest.mark.parametrize("prefilter", [True, False])
def test_filters_hold_without_losing_recall(made, engine, prefilter):
    selection = FigureFilter(license_groups=("commercial",))
    with open_catalog(made.root) as catalog:
        wanted = catalog.count(selection)
        row = catalog.preview(selection, limit=1)[0]
    assert 0 < wanted < engine.index.rows
    engine.prefilter_max_rows = 10**9 if prefilter else 0
    try:
        response = engine.search(
            SearchRequest(image=_jpeg(made.root, row), k=wanted, candidates=wanted, filter=selection)
        )
    finally:
        engine.prefilter_max_rows = 20_000
    assert response.strategy == ("prefilter" if prefilter else "overfetch")
    assert len(response.results) == wanted  # every selected figure is reachable: nothing lost to the filter
    assert {result.license_group for result in response.results} == {"commercial"}
    assert response.results[0].key == row["key"]


def test_bad_requests_are_user_errors(made, engine):
    with pytest.raises(UserError, match="text, an image"):
        SearchRequest()
    with pytest.raises(UserError, match="k must be"):
        SearchRequest(text="x", k=0)
    with pytest.raises(UserError, match="unknown list"):
        SearchRequest(text="x", lists=("nope",))
    with pytest.raises(UserError, match="not an image"):
        engine.search(SearchRequest(image=b"not an image at all"))


def test_index_cli_refuses_unknown_embeddings(made, capsys):
    assert main(["index", "--workspace", str(made.root), "--embeddings", "absent"]) == 2
    assert "no embedding set 'absent'" in capsys.readouterr().err


def test_notebook_08_searches_with_the_models_text_tower(made, tmp_path):
    import json

    import yaml

    from workbench.runner import load_run_config, run_stages

    parameters = {"embeddings": made.embeddings, "model": made.spec, "query": "microscopy", "k": 6}
    config = tmp_path / "run.yaml"
    notebooks = Path(__file__).resolve().parent.parent / "notebooks"
    stage = {"notebook": "08_search", "parameters": parameters}
    config.write_text(yaml.safe_dump({"workspace": str(made.root), "notebooks_dir": str(notebooks), "stages": [stage]}))
    run_dir, outcomes = run_stages(load_run_config(config), run_name="search-test")
    assert [o.status for o in outcomes] == ["ok"], outcomes[0].error
    results = json.loads((run_dir / "08_search.results.json").read_text())
    assert set(results["text_lists"]) == {"images", "captions", "bm25", "articles"}
    assert results["image_query_first"] and results["filter_holds"]
    assert results["indexed"] == open_index(Workspace.at(made.root), made.embeddings).rows
