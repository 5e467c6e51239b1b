"""Labels reach the catalog at once: filters, the `annotations` view, subsets (issue 10 item 5, issue 13 item 2)."""

from __future__ import annotations

import json
import tarfile

import pyarrow.parquet as pq
import pytest
from annotate_fixture import CLUSTERING, build_truth_workspace, write_clustering

from workbench.annotate import Decision, LabelStore
from workbench.annotate.demo import accuracy_curve, read_mapping
from workbench.catalog import FigureFilter, open_catalog, sql
from workbench.catalog.live_labels import LABEL_FIELDS
from workbench.catalog.refresh import is_stale
from workbench.catalog.stats import count_by
from workbench.cli import main
from workbench.explore.data import FIGURE_FACTS
from workbench.workspace import Workspace

CT = ("Clinical Imaging",)
SINGLE = ("single", "single panel")  # the same label as the acceptance test gives: annotators agree


@pytest.fixture(scope="module")
def truth_ws(tmp_path_factory):
    built = build_truth_workspace(tmp_path_factory.mktemp("annotate"))
    with open_catalog(built.root, progress=False):
        pass  # refreshed once, with the clustering's cluster_id
    return built


def _cluster_of(built, concept):
    return built.concepts.index(concept)


def test_a_label_is_in_filters_and_the_annotations_view_at_once(truth_ws, capsys):
    workspace = Workspace.at(truth_ws.root)
    store = LabelStore(workspace)
    ct = _cluster_of(truth_ws, "ct")
    in_cluster = sorted(k for k, c in truth_ws.clusters.items() if c == ct)
    with open_catalog(workspace, progress=False) as catalog:
        before = catalog.count(FigureFilter(concepts=CT))
        store.record(Decision("ann", CLUSTERING, "cluster", str(ct), CT, ("computerized tomography",), *SINGLE))
        assert not is_stale(workspace)  # no refresh needed, none run
        assert catalog.count(FigureFilter(concepts=CT)) == before + len(in_cluster)
        assert catalog.count(FigureFilter(concepts=("computerized tomography",))) == len(in_cluster)
        assert catalog.count(FigureFilter(concepts=("clinical imaging",))) == len(in_cluster)  # any case
        assert catalog.count(FigureFilter(concepts=CT, panel_types=("single",))) == len(in_cluster)
        assert catalog.count(FigureFilter(panel_types=("multiple",))) == 0
        rows = catalog.execute("SELECT key, label_source, label_id, global_concepts FROM annotations ORDER BY key")
        assert rows.fetchall() == [(key, "cluster", ct, list(CT)) for key in in_cluster]
        # an override takes one image out; the same key is then found under its own label
        moved = in_cluster[0]
        store.record(Decision("ann", CLUSTERING, "image", moved, ("Microscopy",)))
        assert catalog.count(FigureFilter(concepts=CT)) == len(in_cluster) - 1
        assert catalog.count(FigureFilter(concepts=("Microscopy",))) == 1
        assert catalog.execute("SELECT label_source FROM annotations WHERE key = ?", [moved]).fetchone() == ("image",)
        store.undo("ann", CLUSTERING, moved)
        assert catalog.count(FigureFilter(concepts=CT)) == len(in_cluster)
        # statistics and the map's facts read the same labels
        assert (CT[0], len(in_cluster)) in count_by(catalog, "concept")
        assert ("computerized tomography", len(in_cluster)) in count_by(catalog, "concepts")
        assert catalog.execute(FIGURE_FACTS, [[moved]]).fetchone()[-1] == CT[0]
    assert main(["catalog", "count", "--workspace", str(workspace.root), "--concept", "Clinical Imaging"]) == 0
    assert json.loads(capsys.readouterr().out)["figures"] == len(in_cluster)


def test_images_assigned_later_inherit_their_clusters_label(tmp_path):
    built = build_truth_workspace(tmp_path, articles=12, seed=3)
    chart = _cluster_of(built, "bar_chart") if "bar_chart" in built.concepts else 0
    members = sorted(k for k, c in built.clusters.items() if c == chart)
    early = {k: c for k, c in built.clusters.items() if k != members[-1]}
    write_clustering(built.root, CLUSTERING, early)  # the last image is not assigned yet
    store = LabelStore(Workspace.at(built.root))
    store.record(Decision("ann", CLUSTERING, "cluster", str(chart), ("Plots and Charts",)))
    with open_catalog(built.root, progress=False) as catalog:
        assert catalog.count(FigureFilter(concepts=("Plots and Charts",))) == len(members) - 1
    write_clustering(built.root, CLUSTERING, built.clusters)  # what `cluster assign` writes
    with open_catalog(built.root, progress=False) as catalog:  # the refresh brings in the new cluster_id
        assert catalog.count(FigureFilter(concepts=("Plots and Charts",))) == len(members)


def test_acceptance_concept_subset_holds_exactly_the_propagated_images(truth_ws):
    """Acceptance: after propagation, `subset --concept "Clinical Imaging"` holds exactly the propagated images
    and each `.json` carries BIOMEDICA's five annotation fields."""
    root = truth_ws.root
    label_file = root.parent / "labels.csv"
    mapping = read_mapping()
    rows = ["target,global,local,panel_type,panel_subtype"]
    for cid in sorted(set(truth_ws.clusters.values())):
        concept = truth_ws.concepts[cid]
        rows.append(f"{cid},{mapping[concept]['global']},{mapping[concept]['local']},single,single panel")
    label_file.write_text("\n".join(rows) + "\n")
    args = ["annotate", "import", "--workspace", str(root), "--clustering", CLUSTERING, "--annotator", "lead"]
    assert main([*args, str(label_file)]) == 0
    clinical = {cid for cid, concept in enumerate(truth_ws.concepts) if mapping[concept]["global"] == CT[0]}
    expected = sorted(key for key, cid in truth_ws.clusters.items() if cid in clinical)
    subset = ["subset", "--workspace", str(root), "--name", "clinical", "--concept", "Clinical Imaging"]
    assert main([*subset, "--no-progress"]) == 0
    folder = root / "subsets" / "clinical"
    assert (folder / "keys.txt").read_text().splitlines() == expected
    samples = {}
    for shard in sorted(folder.glob("*.tar")):
        with tarfile.open(shard) as tar:
            samples |= {m.name[:-5]: json.load(tar.extractfile(m)) for m in tar if m.name.endswith(".json")}
    assert sorted(samples) == expected
    for key, sample in samples.items():
        assert set(LABEL_FIELDS) <= set(sample)
        concept = truth_ws.concepts[truth_ws.clusters[key]]
        assert sample["image_label_id"] == truth_ws.clusters[key]
        assert sample["image_primary_label"] == [CT[0]]
        assert sample["image_secondary_label"] == [mapping[concept]["local"]]
        assert (sample["image_panel_type"], sample["image_panel_subtype"]) == ("single", "single panel")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["catalog_state"]["annotation_labels"].startswith(CLUSTERING + "|")
    assert pq.read_table(folder / "figures.parquet").column("image_primary_label").to_pylist()[0] == [CT[0]]


def test_propagated_accuracy_grows_with_the_clusters_labelled(tmp_path):
    built = build_truth_workspace(tmp_path, articles=16, seed=11)
    truth = tmp_path / "mirror" / "ground_truth.jsonl"
    points, through_catalog = accuracy_curve(built.root, CLUSTERING, truth, [0, 2, 4, 16])
    assert [p.clusters for p in points][0] == 0 and points[0].labelled == 0
    assert [p.labelled for p in points] == sorted(p.labelled for p in points)
    assert points[-1].coverage == 1.0
    # every fifth image sits in the wrong cluster: accuracy is about 80%, never 100%
    assert 0.6 < points[-1].accuracy < 1.0 and points[-1].precision == points[-1].accuracy
    assert through_catalog == points[-1]  # the catalog shows exactly the propagated labels
    events = len(LabelStore(Workspace.at(built.root)).events())
    again, _ = accuracy_curve(built.root, CLUSTERING, truth, [0, 2, 4, 16])
    assert again == points and len(LabelStore(Workspace.at(built.root)).events()) == events  # re-run: nothing new


def test_label_counts_equal_the_row_by_row_filter(tmp_path):
    """`Catalog.count` with label conditions (per-cluster counts + image overrides) agrees with the row-by-row
    filter that previews and subsets use, for every mix of conditions."""
    built = build_truth_workspace(tmp_path, articles=12, seed=5)
    store = LabelStore(Workspace.at(built.root))
    concepts = ("Clinical Imaging", "Microscopy", "Plots and Charts")
    for cid in sorted(set(built.clusters.values()))[:-1]:  # the last cluster stays unlabelled
        panel = "single" if cid % 2 else "multiple"
        store.record(Decision("ann", CLUSTERING, "cluster", str(cid), (concepts[cid % 3],), panel_type=panel))
    for key in sorted(built.clusters)[::4]:  # images with labels of their own
        store.record(Decision("ann", CLUSTERING, "image", key, ("Microscopy",), panel_type="single"))
    selections = [FigureFilter(concepts=(concept,)) for concept in concepts] + [
        FigureFilter(concepts=("Microscopy",), panel_types=("single",)),
        FigureFilter(concepts=("Clinical Imaging", "Plots and Charts"), min_width=300),
        FigureFilter(panel_types=("multiple",), license_groups=("commercial",)),
        FigureFilter(concepts=("Microscopy",), where="caption_length > 40"),
        FigureFilter(concepts=("Maps",)),
    ]
    with open_catalog(built.root, progress=False) as catalog:
        for selection in selections:
            assert catalog.count(selection) == len(catalog.preview(selection, limit=100_000)), selection.describe()
            row_by_row = catalog.query(sql.COUNT_BY, selection, 10, column="license_group")
            assert count_by(catalog, "license_group", selection) == [(g, int(n)) for g, n in row_by_row]
        assert catalog.count(FigureFilter(concepts=("Microscopy",))) > 0
