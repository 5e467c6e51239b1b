"""`workbench annotate import|export|agreement`: BIOMEDICA's file round-trips, CSV, kappas, bad input (issue 10)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from annotate_fixture import write_clustering

from workbench.annotate import Decision, LabelStore, current_labels
from workbench.annotate.agreement import agreement, cohen_kappa, fleiss_kappa
from workbench.cli import main
from workbench.workspace import Workspace

SHARED = Path("/work/shared/biomedica_annotations/cluster_labels.json")


def _labels_file(tmp_path: Path) -> Path:
    if SHARED.is_file():
        return SHARED
    data = {  # a stand-in with BIOMEDICA's quirks: repeated concept, subtype contradicting the panel type
        "0": {"panel_type": "multiple", "panel_subtype": "single panel", "global_class": ["Immuno Assays"],
              "local_class": ["immunoblot"]},
        "1": {"panel_type": "multiple", "panel_subtype": "single panel",
              "global_class": ["Plots and Charts", "Plots and Charts"], "local_class": ["venn diagram", "plot"]},
        "10": {"panel_type": "single", "panel_subtype": "single panel", "global_class": ["Microscopy"],
               "local_class": ["immunohistochemistry"]},
    }  # fmt: skip
    path = tmp_path / "cluster_labels.json"
    path.write_text(json.dumps(data))
    return path


def _run(*args: str) -> int:
    return main(["annotate", *args])


def test_biomedica_file_round_trips_exactly(tmp_path, capsys):
    source = _labels_file(tmp_path)
    ws = str(tmp_path / "ws")
    (tmp_path / "ws").mkdir()
    common = ["--workspace", ws, "--clustering", "biomedica"]
    # BIOMEDICA's clusters were never published: its ids are kept as they are (--external)
    assert _run("import", *common, "--annotator", "biomedica", str(source)) == 2
    assert "--external" in capsys.readouterr().err
    assert _run("import", *common, "--annotator", "biomedica", "--external", str(source)) == 0
    count = len(json.loads(source.read_text()))
    assert f"{count} recorded" in capsys.readouterr().out
    assert _run("import", *common, "--annotator", "biomedica", "--external", str(source)) == 0
    assert "0 recorded" in capsys.readouterr().out  # idempotent: nothing new
    out = tmp_path / "out.json"
    assert _run("export", *common, "--format", "biomedica", "--out", str(out)) == 0
    assert out.read_bytes() == source.read_bytes()
    events = tmp_path / "events.parquet"
    assert _run("export", *common, "--format", "events", "--out", str(events)) == 0
    table = pq.read_table(events)
    assert table.num_rows == count
    assert {"annotator", "target", "global_concepts", "taxonomy_version", "created_at"} <= set(table.column_names)


def test_import_maps_ids_and_refuses_unknown_clusters_keys_and_malformed_files(tmp_path, capsys):
    root = tmp_path / "ws"
    clusters = {f"PMC{i}_F1_0": i % 3 for i in range(9)}
    write_clustering(root, "k3", clusters)
    store = LabelStore(Workspace.at(root))
    common = ["--workspace", str(root), "--clustering", "k3", "--annotator", "ann"]
    source = tmp_path / "bio.json"
    label = {"panel_type": "single", "panel_subtype": "single panel", "global_class": ["Maps"], "local_class": ["map"]}
    source.write_text(json.dumps({"17": label, "18": label, "19": label}))
    assert _run("import", *common, str(source)) == 2  # ids 17-19 are not clusters of k3
    assert "no cluster 17" in capsys.readouterr().err
    table = tmp_path / "ids.csv"
    table.write_text("source_id,cluster_id\n17,0\n18,2\n")
    assert _run("import", *common, "--id-map", str(table), str(source)) == 0
    assert "1 unmapped" in capsys.readouterr().out
    assert set(current_labels(store, "k3").clusters) == {0, 2}
    before = store.fingerprint()
    bad_inputs = {
        "unknown concept": ("target,global,local,panel_type,panel_subtype\n1,Clinical Imagin,,single,\n", "allowed"),
        "unknown cluster": ("target,global,local,panel_type,panel_subtype\n7,Maps,map,,\n", "no cluster 7"),
        "unknown key": ("target,global,local,panel_type,panel_subtype\nPMC99_F1_0,Maps,,,\n", "not a figure key"),
        "missing column": ("target,global,local\n1,Maps,map\n", "missing panel_type"),
        "not json": ('{"1": {"panel_type": \n', "not valid JSON"),
        "wrong fields": ('{"1": {"panel_type": "single"}}', "exactly the fields"),
    }
    for name, (text, message) in bad_inputs.items():
        path = tmp_path / f"{name.replace(' ', '_')}.csv"
        path.write_text(text)
        assert _run("import", *common, str(path)) == 2, name
        err = capsys.readouterr().err
        assert message in err and str(path) in err and len(err.strip().splitlines()) == 1, (name, err)
    assert store.fingerprint() == before  # nothing stored, nothing lost
    assert _run("import", *common, str(tmp_path / "absent.csv")) == 2
    out = tmp_path / "typo.json"
    typo = ["--workspace", str(root), "--clustering", "k33"]
    assert _run("export", *typo, "--format", "biomedica", "--out", str(out)) == 2 and not out.exists()
    assert "no clustering 'k33'" in capsys.readouterr().err
    assert _run("agreement", *typo) == 2


def test_csv_import_matches_spellings_and_splits_multiple_values(tmp_path, capsys):
    root = tmp_path / "ws"
    write_clustering(root, "k3", {f"PMC{i}_F1_0": i % 3 for i in range(9)})
    path = tmp_path / "labels.csv"
    path.write_text(
        "target,global,local,panel_type,panel_subtype,note\n"
        "0,clinical imaging|microscopy,Ultrasound|light microscopy,multiple,multiple panels: images,mixed\n"
        "1,Plots and Charts,bar plot,single,single panel,\n"
    )
    assert _run("import", "--workspace", str(root), "--clustering", "k3", "--annotator", "ann", str(path)) == 0
    labels = current_labels(LabelStore(Workspace.at(root)), "k3").clusters
    assert labels[0].global_concepts == ("Clinical Imaging", "Microscopy")
    assert labels[0].local_concepts == ("ultrasound", "light microscopy")
    assert labels[1].panel_type == "single"


def test_kappas_match_the_textbook_values():
    from sklearn.metrics import cohen_kappa_score

    a = ["x", "x", "y", "y", "z", "x", "y", "z", "z", "x"]
    b = ["x", "y", "y", "y", "z", "x", "x", "z", "y", "x"]
    assert cohen_kappa(list(zip(a, b, strict=True))) == pytest.approx(cohen_kappa_score(a, b))
    # Fleiss (1971)'s worked example, first 3 subjects of 14 raters: the standard formula
    items = [["1"] * 14, ["2"] * 2 + ["3"] * 6 + ["4"] * 4 + ["5"] * 2, ["3"] * 3 + ["4"] * 5 + ["5"] * 6]
    counts = [[row.count(c) for c in "12345"] for row in items]
    n, total = 14, 14 * 3
    p = [sum(row[j] for row in counts) / total for j in range(5)]
    agree = [(sum(c * c for c in row) - n) / (n * (n - 1)) for row in counts]
    expected = (sum(agree) / 3 - sum(q * q for q in p)) / (1 - sum(q * q for q in p))
    assert fleiss_kappa(items) == pytest.approx(expected)
    # two raters: Fleiss' kappa close to Cohen's (equal when the marginals agree)
    assert fleiss_kappa([[x, y] for x, y in zip(a, a, strict=True)]) == pytest.approx(1.0)
    assert cohen_kappa([]) is None and fleiss_kappa([["x"]]) is None


def test_agreement_command_reports_kappas_and_the_disagreement_queue(tmp_path, capsys):
    root = tmp_path / "ws"
    write_clustering(root, "k", {f"PMC{i}_F1_0": i for i in range(6)})
    store = LabelStore(Workspace.at(root))
    plan = {"a": ["Maps", "Maps", "Microscopy", "Tables", "Maps", "Tables"],
            "b": ["Maps", "Microscopy", "Microscopy", "Tables", "Maps", "Maps"]}  # fmt: skip
    for who, concepts in plan.items():
        store.record_many(Decision(who, "k", "cluster", str(i), (c,)) for i, c in enumerate(concepts))
    assert _run("agreement", "--workspace", str(root), "--clustering", "k", "--json") == 0
    report = json.loads(capsys.readouterr().out)
    expected = cohen_kappa(list(zip(plan["a"], plan["b"], strict=True)))
    assert report["cohen_kappa"] == pytest.approx(expected)
    assert report["fleiss_kappa"] is not None and report["items"] == 6
    assert set(report["per_concept"]) == {"Maps", "Microscopy", "Tables"}
    assert all({"cohen_kappa", "fleiss_kappa"} <= set(v) for v in report["per_concept"].values())
    assert report["contested"] == 2 and [d["target"] for d in report["disagreements"]] == ["1", "5"]
    store.record(Decision("lead", "k", "cluster", "1", ("Microscopy",), action="adjudicate"))
    after = agreement(current_labels(store, "k"))
    assert len(after.contested) == 1 and after.adjudicated == 1
    assert after.cohen_kappa == pytest.approx(expected)  # an adjudication is not a rating
    assert _run("agreement", "--workspace", str(root), "--clustering", "k") == 0
    assert "Cohen's kappa" in capsys.readouterr().out
