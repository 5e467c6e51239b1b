"""The annotation widget driven as Python objects: values set, buttons clicked, key events sent through the key
pad, on a real sample workspace (thumbnails read through shard offsets)."""

from __future__ import annotations

import numpy as np
import pytest
from annotate_fakes import CHOICES, MemoryLabels
from explore_fixture import build_sample_workspace, write_explore_files

from workbench.annotate.derive import current_labels
from workbench.annotate.events import Decision, LabelStore
from workbench.annotate.loop import AnnotateLoop
from workbench.annotate.queue import ClusterQueue
from workbench.annotate.review import review_widget
from workbench.annotate.session import annotate_widget
from workbench.annotate.source import ClusterSource
from workbench.annotate.suggest import suggest
from workbench.annotate.values import LabelValue
from workbench.annotate.widget import AnnotateView
from workbench.catalog import open_catalog
from workbench.errors import InputNotFound, UserError


@pytest.fixture(scope="module")
def explored(tmp_path_factory):
    return write_explore_files(build_sample_workspace(tmp_path_factory.mktemp("annotate"), articles=16, seed=5))


@pytest.fixture
def loop(explored):
    with open_catalog(explored.root, progress=False) as catalog:
        source = ClusterSource(catalog, explored.clustering)
    made = AnnotateLoop(AnnotateView(CHOICES), source, MemoryLabels(), embeddings=explored.embeddings)
    yield made
    made.close()


def test_queue_orders() -> None:
    queue = ClusterQueue({0: 5, 1: 9, 2: 7}, "largest")
    assert queue.ranked() == [1, 2, 0]
    queue.skip(1)
    assert queue.ranked() == [2, 0, 1]
    queue.labelled.add(2)
    assert queue.next() == 0
    uncertain = ClusterQueue({0: 5, 1: 9, 2: 7}, "uncertain", confidence={0: 0.2, 1: 0.9})
    assert uncertain.ranked() == [2, 0, 1]  # no suggestion (confidence 0) first, then least confident
    with pytest.raises(ValueError, match="largest, uncertain"):
        ClusterQueue({}, "random")


def test_suggestions_come_from_the_nearest_labelled_centroids() -> None:
    centroids = np.array([[1, 0], [0.99, 0.14], [0, 1], [0.1, 0.99]], dtype=np.float64)
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    labels = {0: LabelValue(("Microscopy",)), 2: LabelValue(("Plots and Charts",))}
    found = suggest(np.arange(4), centroids, labels)
    assert set(found) == {1, 3}
    assert found[1].label.globals == ("Microscopy",) and found[3].label.globals == ("Plots and Charts",)
    assert 0.5 < found[1].confidence <= 1 and found[1].neighbours[0] == 0


def test_first_cluster_is_the_largest_with_twenty_thumbnails_at_most(loop, explored) -> None:
    sizes = loop.source.sizes()
    assert loop.current == max(sizes, key=lambda cid: (sizes[cid], -cid))
    shown = [tile for tile in loop.view.tiles if tile.key]
    assert 0 < len(shown) == min(20, sizes[loop.current])
    assert shown[0].image.value[:2] == b"\xff\xd8"  # a JPEG thumbnail read through the shard offsets
    assert "PMC" in shown[0].caption.value
    assert f"0 / {len(sizes)}" in loop.view.progress.value


def test_mouse_labels_a_cluster_and_moves_on(loop) -> None:
    first = loop.current
    loop.view.globals.value = ("Microscopy",)
    assert loop.view.locals.options == ("fluorescence microscopy", "light microscopy")  # filtered by the globals
    loop.view.locals.value = ("light microscopy",)
    loop.view.panel_type.value = "single"
    assert "one image" in loop.view.definition.value
    loop.view.buttons["save"].click()
    assert loop.labels.cluster_labels(mine=True)[first] == LabelValue(
        ("Microscopy",), ("light microscopy",), "single", ""
    )
    assert loop.current != first and f"1 / {loop.queue.total}" in loop.view.progress.value
    assert len(loop.timings.render_s) == 1 and len(loop.timings.record_s) == 1


def test_keys_label_a_cluster(loop) -> None:
    first = loop.current
    loop.view.keypad.press("3")  # Plots and Charts
    loop.view.keypad.press("1")
    loop.view.keypad.press("1")  # toggled off again
    assert loop.view.globals.value == ("Plots and Charts",)
    loop.view.keypad.press("Enter")
    assert loop.labels.cluster_labels(mine=True)[first].globals == ("Plots and Charts",)
    loop.view.keypad.press("q")  # not a shortcut: ignored
    second = loop.current
    loop.view.keypad.press("s")  # skip
    assert loop.current not in (first, second) and loop.queue.skipped == [second]
    loop.view.keypad.press("b")
    assert loop.current == second


def test_undo_is_an_event_and_shows_the_cluster_again(loop) -> None:
    first = loop.current
    loop.view.globals.value = ("Clinical Imaging",)
    loop.view.buttons["save"].click()
    loop.view.buttons["undo"].click()
    assert first not in loop.labels.cluster_labels(mine=True)
    assert loop.current == first and len(loop.labels.events) == 2
    loop.view.buttons["undo"].click()
    assert "nothing to undo" in loop.view.status.value


def test_saving_without_a_concept_is_refused(loop) -> None:
    first = loop.current
    loop.view.buttons["save"].click()
    assert "at least one global concept" in loop.view.status.value and loop.current == first
    assert loop.labels.events == []


def test_per_image_overrides_and_enlarge(loop) -> None:
    tiles = [tile for tile in loop.view.tiles if tile.key]
    tiles[0].select.value = True
    loop.view.globals.value = ("Plots and Charts",)
    loop.view.keypad.press("o")
    assert loop.labels.image_labels([tiles[0].key])[tiles[0].key].globals == ("Plots and Charts",)
    assert "image label" in tiles[0].caption.value and not tiles[0].select.value
    tiles[1].enlarge.click()
    assert loop.view.large.layout.display is None and "open PMC" in loop.view.large_text.value
    assert loop.view.large_image.value[:2] == b"\xff\xd8"
    loop.view.keypad.press("Escape")
    assert loop.view.large.layout.display == "none"


def test_suggestions_prefill_the_next_cluster_in_uncertain_order(explored) -> None:
    with open_catalog(explored.root, progress=False) as catalog:
        source = ClusterSource(catalog, explored.clustering)
    loop = AnnotateLoop(AnnotateView(CHOICES), source, MemoryLabels(), "uncertain", explored.embeddings)
    try:
        loop.view.globals.value = ("Microscopy",)
        loop.view.buttons["save"].click()
        assert loop.suggestions and loop.current in loop.suggestions
        assert loop.view.globals.value == ("Microscopy",)  # pre-filled with the suggestion
        assert "confidence" in loop.view.suggestion.value
        loop.view.globals.value = ()
        loop.view.keypad.press("a")
        assert loop.view.globals.value == ("Microscopy",)
    finally:
        loop.close()


def test_the_end_of_the_queue(loop) -> None:
    for _ in range(loop.queue.total):
        loop.view.globals.value = ()  # suggestions pre-fill the pickers: start from none
        loop.view.keypad.press("2")
        loop.view.keypad.press("Enter")
    assert loop.current is None and "Every cluster is labelled" in loop.view.title.value
    assert f"{loop.queue.total} / {loop.queue.total}" in loop.view.progress.value


def test_unknown_clustering_is_one_clear_error(explored) -> None:
    with open_catalog(explored.root, progress=False) as catalog, pytest.raises(InputNotFound, match="nope"):
        ClusterSource(catalog, "nope")


def test_the_real_store_and_the_catalog_annotations_view(explored, tmp_path) -> None:
    with open_catalog(explored.root, progress=False) as catalog:
        loop = annotate_widget(catalog, "alice", explored.clustering, embeddings=explored.embeddings)
        try:
            first = loop.current
            loop.view.keypad.press("1")  # the taxonomy's first global concept
            chosen = loop.view.globals.value
            loop.view.keypad.press("Enter")
            events = LabelStore(explored.root).events(explored.clustering)
            assert [(e.decision.annotator, e.decision.target, e.decision.global_concepts) for e in events] == [
                ("alice", str(first), chosen)
            ]
            assert events[0].decision.taxonomy_version  # stamped with the taxonomy version
            rows = catalog.execute(
                "SELECT count(*), min(label_id), min(global_concepts[1]) FROM annotations"
            ).fetchone()
            assert rows == (loop.source.sizes()[first], first, chosen[0])
            loop.view.buttons["undo"].click()
            assert catalog.execute("SELECT count(*) FROM annotations").fetchone()[0] == 0
            assert loop.current == first
        finally:
            loop.close()


def test_an_annotator_name_is_required(explored) -> None:
    with open_catalog(explored.root, progress=False) as catalog, pytest.raises(UserError, match="annotator"):
        annotate_widget(catalog, " ", explored.clustering)


def test_disagreement_review_side_by_side_and_adjudication(explored) -> None:
    store = LabelStore(explored.root)
    taxonomy = store.taxonomy
    cluster = "3"
    for who, concept in (("ann-a", taxonomy.globals[0]), ("ann-b", taxonomy.globals[1])):
        store.record(Decision(who, explored.clustering, "cluster", cluster, (concept,)))
    with open_catalog(explored.root, progress=False) as catalog:
        review = review_widget(catalog, "chief", explored.clustering)
    try:
        assert review.current["target"] == cluster and "1 contested" in review.view.header.value
        columns = review.view.columns.children
        assert len(columns) == 2 and "ann-a" in columns[0].children[0].value and review.view.grid.children
        columns[1].children[1].click()  # adopt ann-b's label
        labels = current_labels(store, explored.clustering)
        assert labels.clusters[3].global_concepts == (taxonomy.globals[1],)
        assert labels.states[("cluster", cluster)].status == "adjudicated"
        assert review.current is None and "No contested clusters" in review.view.title.value
    finally:
        review.close()
