"""Taxonomy, the append-only label store and derived labels (issue 10 items 1, 2, 5)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from workbench.annotate import Decision, LabelStore, Taxonomy, current_labels, derive, load_taxonomy
from workbench.annotate.derive import Label
from workbench.errors import UserError
from workbench.workspace import Workspace

CT = ("Clinical Imaging",)
MICRO = ("Microscopy",)


def label(annotator, target, globals_=CT, locals_=(), action="label", kind="cluster", clustering="c"):
    return Decision(
        annotator, clustering, kind, str(target), globals_, locals_, "single", "single panel", action=action
    )


def test_default_taxonomy_is_biomedicas_collapsed_one():
    taxonomy = load_taxonomy()
    assert isinstance(taxonomy, Taxonomy)
    assert len(taxonomy.globals) == 16 and len(taxonomy.all_locals) == 119
    assert "ultrasound" in taxonomy.locals["Clinical Imaging"]
    assert taxonomy.panel_types == ("single", "multiple") and len(taxonomy.panel_subtypes) == 4
    assert taxonomy.definitions["multiple"] and taxonomy.definitions["single panel"]
    assert taxonomy.version.startswith("biomedica-collapsed")
    assert taxonomy.resolve("global", "clinical imaging") == "Clinical Imaging"


@pytest.mark.parametrize(
    ("fields", "names"),
    [
        ({"global_concepts": ("Clinical imagin",)}, ["'Clinical imagin'", "'Clinical Imaging'", "'Microscopy'"]),
        ({"global_concepts": CT, "local_concepts": ("bar plot",)}, ["'bar plot'", "Plots and Charts", "'ultrasound'"]),
        ({"global_concepts": CT, "panel_type": "triple"}, ["'triple'", "'single'", "'multiple'"]),
        ({"global_concepts": CT, "panel_type": "multiple", "panel_subtype": "single panel"}, ["does not go with"]),
    ],
)
def test_a_label_outside_the_taxonomy_is_refused_with_the_allowed_values(tmp_path, fields, names):
    store = LabelStore(Workspace.at(tmp_path))
    with pytest.raises(UserError) as error:
        store.record(Decision("ann", "c", "cluster", "1", **fields))
    for name in names:
        assert name in str(error.value)
    assert store.events() == []


def test_a_users_yaml_taxonomy_is_validated_and_its_version_recorded(tmp_path):
    good = tmp_path / "mine.yaml"
    good.write_text("name: mine\nversion: '3'\nglobals:\n  Cells: [neuron, glia]\n  Plots: [bar]\n")
    store = LabelStore(Workspace.at(tmp_path / "ws"), str(good))
    store.record(Decision("ann", "c", "cluster", "0", ("Cells",), ("glia",), "single"))
    assert store.events()[0].decision.taxonomy_version == "3"
    with pytest.raises(UserError, match="'Microscopy'.*allowed: 'Cells', 'Plots'"):
        store.record(Decision("ann", "c", "cluster", "0", MICRO))
    for text, message in [
        ("name: x\nversion: 1\n", "globals"),
        ("name: x\nversion: 1\nglobals: {A: [a, a]}\n", "twice"),
        ("name: x\nversion: 1\nglobals: {A: [a]}\ncolour: red\n", "unknown field"),
        ("name: x\nversion: 1\nglobals: [A\n", "not valid YAML"),
    ]:
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(UserError, match=message):
            load_taxonomy(str(bad.rename(tmp_path / f"bad{len(text)}.yaml")))
    with pytest.raises(UserError, match="no taxonomy"):
        load_taxonomy("no-such-taxonomy")


def test_agreement_contest_adjudication_undo_skip_and_overrides(tmp_path):
    store = LabelStore(Workspace.at(tmp_path))
    store.record_many([label("a", 1), label("b", 1), label("a", 2), label("b", 2, MICRO), label("a", 3)])
    labels = current_labels(store, "c")
    assert set(labels.clusters) == {1, 3}  # 2 is contested
    assert [state.target for state in labels.contested] == ["2"]
    standing = labels.states[("cluster", "2")].by_annotator
    assert standing == {"a": Label(CT, (), "single", "single panel"), "b": Label(MICRO, (), "single", "single panel")}
    store.record(label("lead", 2, MICRO, action="adjudicate"))
    assert current_labels(store, "c").clusters[2].global_concepts == MICRO  # the adjudication wins
    store.record(label("a", 3, MICRO))  # a changes their mind: the latest decision counts
    assert current_labels(store, "c").clusters[3].global_concepts == MICRO
    store.undo("a", "c", "3")  # undo is a new event: back to the previous decision
    assert current_labels(store, "c").clusters[3].global_concepts == CT
    store.record(label("a", 3, action="skip"))
    assert 3 not in current_labels(store, "c").clusters
    with pytest.raises(UserError, match="nothing|no decision"):
        store.undo("nobody", "c", "3")
    # per-image labels win over the cluster's; cluster labels of another clustering do not count
    store.record(Decision("a", "c", "image", "PMC1_F1_0", MICRO))
    store.record(label("a", 1, MICRO, clustering="other"))
    labels = current_labels(store, "c")
    assert labels.label_of("PMC1_F1_0", 1) == (Label(MICRO), "image")
    assert labels.label_of("PMC1_F2_0", 1)[0].global_concepts == CT
    assert labels.label_of("PMC1_F3_0", 99) == (None, "")
    # nothing was overwritten: every decision is still there, in order
    assert [event.decision.action for event in store.events()][-5:] == ["label", "undo", "skip", "label", "label"]


def test_latest_decision_wins_when_the_workspace_says_so(tmp_path):
    store = LabelStore(Workspace.at(tmp_path))
    store.record_many([label("a", 1), label("b", 1, MICRO)])
    assert 1 not in current_labels(store, "c").clusters
    before = store.fingerprint()
    store.set_setting("contested", "latest")
    assert store.fingerprint() != before
    state = current_labels(store, "c").states[("cluster", "1")]
    assert state.status == "latest" and state.label.global_concepts == MICRO
    with pytest.raises(UserError, match="wait, latest"):
        store.set_setting("contested", "loudest")


def test_record_many_stores_none_when_one_is_bad(tmp_path):
    store = LabelStore(Workspace.at(tmp_path))
    with pytest.raises(UserError, match="Nope"):
        store.record_many([label("a", 1), label("a", 2, ("Nope",))])
    assert store.events() == [] and store.fingerprint().startswith("0:0")
    for bad in [dict(target_kind="cell"), dict(annotator=" "), dict(target="x7"), dict(action="vote")]:
        fields = {"annotator": "a", "clustering": "c", "target_kind": "cluster", "target": "1", "global_concepts": CT}
        with pytest.raises(UserError):
            Decision(**{**fields, **bad})


def test_the_old_per_key_table_stays_readable(tmp_path):
    from workbench.catalog.labels import AnnotationStore

    workspace = Workspace.at(tmp_path)
    AnnotationStore(workspace).add([{"key": "PMC1_F1_0", "annotator": "model", "concept": "Microscopy"}])
    events = LabelStore(workspace).events()
    assert [(e.decision.target, e.decision.global_concepts, e.decision.taxonomy_version) for e in events] == [
        ("PMC1_F1_0", MICRO, "legacy")
    ]
    assert derive(events, "any").images["PMC1_F1_0"].global_concepts == MICRO
    LabelStore(workspace).events()  # migrated once only
    assert len(LabelStore(workspace).events()) == 1


WRITER = textwrap.dedent(
    """
    import sys
    from workbench.annotate import Decision, LabelStore
    from workbench.workspace import Workspace
    store = LabelStore(Workspace.at(sys.argv[1]))
    name = sys.argv[2]
    open(sys.argv[3], "w").close()  # ready
    while not __import__("os").path.exists(sys.argv[4]):
        __import__("time").sleep(0.001)
    for i in range(500):
        concept = "Clinical Imaging" if i % 2 == 0 else "Microscopy"
        store.record(Decision(name, "c", "cluster", str(i % 50), (concept,), panel_type="single"))
    """
)


def test_two_processes_writing_500_decisions_each_lose_nothing(tmp_path):
    root = tmp_path / "ws"
    LabelStore(Workspace.at(root)).fingerprint()
    go = tmp_path / "go"
    processes = []
    for name in ("alice", "bob"):
        ready = tmp_path / f"{name}.ready"
        command = [sys.executable, "-c", WRITER, str(root), name, str(ready), str(go)]
        processes.append((subprocess.Popen(command, stderr=subprocess.PIPE, text=True), ready))
    for _, ready in processes:  # both started and waiting: they write at the same moment
        while not ready.exists():
            time.sleep(0.01)
    go.touch()
    for process, _ in processes:
        assert process.wait(timeout=300) == 0, process.stderr.read()
    store = LabelStore(Workspace.at(root))
    events = store.events()
    assert len(events) == 1000
    assert sorted(e.decision.annotator for e in events).count("alice") == 500
    with sqlite3.connect(Path(root) / "state" / "annotations.sqlite") as connection:
        assert connection.execute("SELECT count(*) FROM label_events").fetchone()[0] == 1000
    # each annotator's latest decision per cluster: i in 450..499; even ids Clinical Imaging, odd Microscopy
    labels = current_labels(store, "c")
    assert len(labels.clusters) == 50 and not labels.contested
    assert all(label.global_concepts == (CT if cid % 2 == 0 else MICRO) for cid, label in labels.clusters.items())


def test_schema_of_label_events_matches_the_table(tmp_path):
    import yaml

    from workbench.licenses import DATA_CATALOG

    documented = yaml.safe_load((DATA_CATALOG / "schemas" / "label_events.yaml").read_text())["columns"]
    store = LabelStore(Workspace.at(tmp_path))
    store.record(label("a", 1))
    with sqlite3.connect(store.path) as connection:
        columns = [row[1] for row in connection.execute("PRAGMA table_info(label_events)")]
    assert columns == list(documented)
