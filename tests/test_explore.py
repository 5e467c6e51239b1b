"""The embedding map of notebook 04 as Python objects: a selection arrives as plotly's widget receives it from the
browser and becomes the filter panel's `FigureFilter(keys=...)`, whose subset holds exactly the selected keys;
hover, nearest neighbours, colourings, galleries, the standalone HTML, and the notebook run by the runner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import REPO
from explore_fixture import build_sample_workspace, write_explore_files

from workbench.catalog import FigureFilter, open_catalog
from workbench.errors import InputNotFound
from workbench.explore import ExploreStore, cluster_galleries, explore_map, save_map_html
from workbench.explore.widget import TOP_CATEGORIES, categories
from workbench.runner import load_run_config, run_stages


@pytest.fixture(scope="module")
def explored(tmp_path_factory):
    root = build_sample_workspace(tmp_path_factory.mktemp("explore"), articles=16, seed=5)
    return write_explore_files(root)


@pytest.fixture
def loop(explored):
    with open_catalog(explored.root, progress=False) as catalog:
        made, _ = explore_map(catalog, explored.map_name, embeddings=explored.embeddings, subset_name="")
        yield made
        made.store.close()
        made.panel.store.close()


def _browser_selects(figure, chosen: dict[int, list[int]], event: str = "plotly_selected") -> None:
    """What plotly's FigureWidget receives from the browser after a box/lasso selection (trace, point index)."""
    pairs = [(trace, point) for trace, points in chosen.items() for point in points]
    message = {
        "event_type": event,
        "points": {
            "trace_indexes": [trace for trace, _ in pairs],
            "point_indexes": [point for _, point in pairs],
            "xs": [0.0] * len(pairs),
            "ys": [0.0] * len(pairs),
        },
        "selector": {"type": "box", "selector_state": {"xrange": [0, 1], "yrange": [0, 1]}},
        "device_state": None,
    }
    figure._handler_js2py_pointsCallback({"new": message})


def test_a_map_selection_materialises_exactly_the_selected_keys(loop, explored):
    view = loop.view
    assert len(view.figure.data) == 4 and sum(len(t.x) for t in view.figure.data) == len(explored.keys)
    chosen = {0: [0, 2, 3], 2: [1], 3: list(range(len(view.figure.data[3].x)))}
    expected = sorted(str(loop.points.keys[view.positions[t][i]]) for t, points in chosen.items() for i in points)
    _browser_selects(view.figure, chosen)

    assert sorted(loop.selected_keys) == expected
    assert loop.selection().keys == tuple(expected)
    assert f"<b>{len(expected)}</b> figures selected" in loop.panel.panel.count_label.value
    assert f"{len(expected)}</b> points selected" in view.selection_label.value
    assert f"keys={len(expected)} chosen figures" in loop.panel.panel.kept_note.value
    previewed = [tile.children[1].value for tile in loop.panel.panel.preview.children]
    assert len(previewed) == min(8, len(expected))

    loop.panel.panel.subset_name.value = "from-the-map"
    loop.panel.materialise()
    assert "error" not in loop.panel.panel.subset_message.value.lower()
    subset = explored.root / "subsets" / "from-the-map"
    assert sorted(pq.read_table(subset / "figures.parquet")["key"].to_pylist()) == expected
    manifest = json.loads((subset / "manifest.json").read_text())
    assert manifest["samples"] == len(expected)

    # the panel's own controls narrow the map's selection further
    loop.panel.panel.license_groups.value = ("commercial",)
    with open_catalog(explored.root, progress=False) as catalog:
        narrowed = catalog.count(FigureFilter(keys=tuple(expected), license_groups=("commercial",)))
    assert f"<b>{narrowed}</b> figures selected" in loop.panel.panel.count_label.value

    # double-click (deselect) and an empty box clear the map's selection: the panel works on everything again
    loop.panel.panel.license_groups.value = ()
    for trace in view.figure.data:
        trace._dispatch_on_deselect(None)
    assert loop.selected_keys == () and loop.selection().keys == ()
    assert f"<b>{len(explored.keys)}</b> figures selected" in loop.panel.panel.count_label.value


def test_hover_shows_the_figure_and_click_its_nearest_neighbours(loop, explored):
    view = loop.view
    _browser_selects(view.figure, {1: [0]}, "plotly_hover")
    key = str(loop.points.keys[view.positions[1][0]])
    pmcid = key.split("_")[0]
    assert pmcid in view.card_text.value and view.card_image.value[:2] == b"\xff\xd8"

    _browser_selects(view.figure, {1: [0]}, "plotly_click")
    assert len(view.neighbours.children) == 12 and key in view.neighbours_note.value
    keys, vectors = np.array(explored.keys), _unit_vectors(explored)
    scores = vectors @ vectors[explored.keys.index(key)]
    expected = [k for k in keys[np.argsort(-scores, kind="stable")] if k != key][:12]
    assert [item.key for item, _ in loop.store.neighbours(key)] == expected


def _unit_vectors(explored) -> np.ndarray:
    from workbench.embed.store import EmbeddingSet
    from workbench.workspace import Workspace

    keys, vectors = EmbeddingSet.of(Workspace(explored.root), explored.embeddings).load()
    assert keys == explored.keys
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.mark.parametrize("colour_by", ["cluster", "licence group", "year", "journal", "concept"])
def test_every_colouring_draws_every_point_once(loop, colour_by):
    loop.view.colour.value = colour_by
    drawn = np.sort(np.concatenate(loop.view.positions))
    assert np.array_equal(drawn, np.arange(len(loop.points)))
    assert len(loop.view.figure.data) <= TOP_CATEGORIES + 2
    assert all("(" in trace.name for trace in loop.view.figure.data)  # label (count)


def test_large_maps_are_subsampled_and_say_so(explored):
    with open_catalog(explored.root, progress=False) as catalog:
        store = ExploreStore(catalog, explored.map_name)
        points = store.points(max_points=10)
        store.close()
    assert len(points) == 10 and points.total == len(explored.keys) and points.subsampled
    assert set(points.keys) <= set(explored.keys)
    groups = categories(points, "cluster")
    assert sum(len(where) for _, where in groups) == 10


def test_galleries_show_twenty_per_cluster_nearest_first_and_the_html_stands_alone(explored, tmp_path):
    with open_catalog(explored.root, progress=False) as catalog:
        store = ExploreStore(catalog, explored.map_name)
        table = store.clusters()
        gallery = cluster_galleries(store, clusters=2, per_cluster=20)
        members = store.cluster_members(int(table[0]["cluster_id"]), 20)
        points = store.points()
        store.close()
    assert [int(row["size"]) for row in table] == sorted((int(row["size"]) for row in table), reverse=True)
    titles = [child.value for child in gallery.children[::2]]
    assert f"Cluster {int(table[0]['cluster_id'])}: group" in titles[0] and len(titles) == 2
    assert len(gallery.children[1].children) == min(20, int(table[0]["size"])) == len(members)
    assert members[0] == table[0]["medoid_keys"][0]

    path = save_map_html(points, tmp_path / "map.html", "licence group")
    text = path.read_text()
    assert text.lstrip().lower().startswith("<!doctype html>") and "scattergl" in text and "plotly.js" in text.lower()
    assert "<script src=" not in text and len(text) > 1_000_000  # plotly.js inlined: opens offline
    assert points.facts["pmcid"][0] in text


def test_a_missing_map_is_one_clear_error(explored):
    with open_catalog(explored.root, progress=False) as catalog, pytest.raises(InputNotFound, match="nope.parquet"):
        ExploreStore(catalog, "nope")


def test_notebook_04_runs_and_writes_the_html_beside_itself(explored, tmp_path):
    stage = {
        "model": "",  # the fixture wrote embeddings, clusters and map already
        "embeddings": explored.embeddings,
        "map_name": explored.map_name,
        "gallery_clusters": 2,
        "gallery_size": 5,
        "max_points": 30,
    }
    config = tmp_path / "run.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "workspace": str(explored.root),
                "notebooks_dir": str(REPO / "notebooks"),
                "stages": [{"notebook": "04_explore", "parameters": stage}],
            }
        )
    )
    run_dir, outcomes = run_stages(load_run_config(config), run_name="explore-test")
    assert [o.status for o in outcomes] == ["ok"], outcomes[0].error
    results = outcomes[0].results
    assert results["points_shown"] == 30 and results["points_in_map"] == len(explored.keys)
    assert results["clustering"] == explored.clustering and results["clusters"] == 4
    assert results["neighbours_found"] == 12
    assert Path(results["html_path"]) == run_dir / "04_explore_map.html" and results["html_bytes"] > 1_000_000


def _points(count: int):
    from workbench.explore.data import MapPoints

    rng = np.random.default_rng(1)
    facts = {
        name: np.asarray([f"{name}{i % 3}" for i in range(count)], dtype=object)
        for name in ("pmcid", "caption", "license_group", "article_year", "article_journal", "concept", "cluster")
    }
    keys = np.asarray([f"K{i}" for i in range(count)], dtype=object)
    xy = rng.normal(size=(2, count)).astype(np.float32)
    return MapPoints(keys, xy[0], xy[1], facts, count)


def test_large_maps_send_no_hover_text_and_a_selection_restyles_once(monkeypatch):
    from workbench.explore import widget

    view = widget.MapView("t")
    view.draw(_points(30), "cluster")
    assert all(len(trace.text) == len(trace.x) for trace in view.figure.data)
    monkeypatch.setattr(widget, "WIDGET_HOVER_TEXT_POINTS", 20)
    view.draw(_points(30), "cluster")
    assert all(trace.text is None and trace.hoverinfo == "none" for trace in view.figure.data)

    sent: list[str] = []
    for name in ("_send_update_msg", "_send_restyle_msg"):
        original = getattr(view.figure, name)
        monkeypatch.setattr(view.figure, name, lambda *a, _n=name, _o=original, **k: (sent.append(_n), _o(*a, **k)))
    chosen: list[np.ndarray] = []
    view.on_select(chosen.append)
    _browser_selects(view.figure, {0: [0, 1], 1: [0], 2: [2]})
    assert sent == ["_send_update_msg"]  # one message for every trace's selectedpoints, not one per trace
    assert len(chosen) == 1 and len(chosen[0]) == 4
