"""Subsets: byte-identical samples copied by offset, licence enforcement, manifests that reproduce byte for byte."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tarfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import webdataset as wds
from catalog_fixture import build_workspace

from workbench.catalog import FigureFilter, compile_filter, open_catalog, refresh_catalog
from workbench.catalog.db import Catalog
from workbench.catalog.subset import (
    LicenceViolation,
    SubsetError,
    SubsetExists,
    SubsetSpec,
    materialise_subset,
    reproduce_subset,
)
from workbench.catalog.subset_copy import CURRENT_METADATA, ShardSeries, SourceShards, copy_batch
from workbench.cli import main
from workbench.workspace import Workspace

COMMERCIAL = "license_group = 'commercial'"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    built = build_workspace(tmp_path_factory.mktemp("subset") / "ws", articles=70, seed=21, pairs_per_shard=60)
    refresh_catalog(built.workspace, progress=False)
    return built.workspace


def _folder_digests(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _source_member(workspace, row, ext) -> bytes:
    with open(workspace.root / row["shard"], "rb") as handle:
        handle.seek(row[f"{ext}_offset"])
        return handle.read(row[f"{ext}_size"])


def _check_sample_json(member: bytes, source: bytes, row: dict) -> None:
    """The source .json with the catalog's current metadata merged over it, in fixed bytes."""
    data = json.loads(member)
    current = {field: row[column] for field, column in CURRENT_METADATA.items() if column in row}
    assert data == {**json.loads(source), **current}
    assert member == json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def _check_subset_against_catalog(workspace, name, selection):
    folder = workspace.subsets / name
    with open_catalog(workspace) as catalog:
        expected = catalog.count(selection)
        source_rows = {r["key"]: r for r in catalog.selected_rows(selection).read_all().to_pylist()}
    assert len(source_rows) == expected > 0
    keys = (folder / "keys.txt").read_text().splitlines()
    assert keys == sorted(source_rows)
    sizes = json.loads((folder / "sizes.json").read_text())
    shards = sorted(p.name for p in folder.glob("*.tar"))
    assert sorted(sizes) == shards and sum(sizes.values()) == expected
    members = {}
    for shard in shards:  # plain ustar, readable by tarfile; every member byte-identical to its source
        with tarfile.open(folder / shard, format=tarfile.USTAR_FORMAT) as tar:
            for info in tar:
                members[info.name] = tar.extractfile(info).read()
    assert len(members) == 3 * expected
    for key, row in source_rows.items():
        for ext in ("jpg", "txt"):  # byte-identical to the source
            assert members[f"{key}.{ext}"] == _source_member(workspace, row, ext)
        _check_sample_json(members[f"{key}.json"], _source_member(workspace, row, "json"), row)
    # the subset's own rows point at its own shards
    subset_rows = pq.read_table(folder / "figures.parquet").to_pylist()
    assert [r["key"] for r in subset_rows] == keys
    for row in subset_rows[:: max(1, len(subset_rows) // 10)]:
        with open(folder / row["shard"], "rb") as handle:
            handle.seek(row["jpg_offset"])
            assert handle.read(row["jpg_size"]) == members[f"{row['key']}.jpg"]
    # and WebDataset reads every sample
    urls = [str(folder / shard) for shard in shards]
    samples = list(wds.WebDataset(urls, shardshuffle=False))
    assert sorted(s["__key__"] for s in samples) == keys
    assert all(s["jpg"] == members[f"{s['__key__']}.jpg"] for s in samples)
    return json.loads((folder / "manifest.json").read_text())


def test_acceptance_commercial_subset_from_the_command_line(workspace, capsys):
    assert (
        main(
            [
                "subset",
                "--workspace",
                str(workspace.root),
                "--name",
                "com",
                "--where",
                COMMERCIAL,
                "--shard-samples",
                "25",
                "--no-progress",
            ]
        )
        == 0
    )
    assert "samples in" in capsys.readouterr().out
    manifest = _check_subset_against_catalog(workspace, "com", FigureFilter(where=COMMERCIAL))
    assert manifest["license_groups_present"] == ["commercial"]
    assert set(manifest["counts_by_license_group"]) == {"commercial"}
    assert sum(entry["samples"] for entry in manifest["licenses"]) == manifest["samples"]
    assert manifest["filter"]["where"] == COMMERCIAL and manifest["tool"]["duckdb"]
    assert len(manifest["source_shards"]) >= 2  # samples mixed across source shards
    assert all(len(info["sha256"]) == 64 for info in manifest["source_shards"].values())
    assert not list(workspace.tmp.iterdir())  # nothing left behind


def test_manifest_reproduces_byte_for_byte(workspace, capsys):
    selection = FigureFilter(license_groups=("commercial", "other"), exclude_duplicates=True, year_from=2008)
    with open_catalog(workspace) as catalog:
        original = materialise_subset(catalog, SubsetSpec("mixed", selection, shard_samples=20), progress=False)
    assert original.samples == sum(original.counts_by_license_group.values()) and original.shards >= 2
    _check_subset_against_catalog(workspace, "mixed", selection)
    first = _folder_digests(workspace.subsets / "mixed")
    manifest = workspace.subsets / "mixed" / "manifest.json"
    assert (
        main(
            [
                "subset",
                "--workspace",
                str(workspace.root),
                "--from-manifest",
                str(manifest),
                "--name",
                "mixed-again",
                "--no-progress",
            ]
        )
        == 0
    )
    again = _folder_digests(workspace.subsets / "mixed-again")
    assert {k: v for k, v in again.items() if k != "manifest.json"} == {
        k: v for k, v in first.items() if k != "manifest.json"
    }
    recorded = json.loads(manifest.read_text())
    rebuilt = json.loads((workspace.subsets / "mixed-again" / "manifest.json").read_text())
    assert {**recorded, "name": None} == {**rebuilt, "name": None}
    # reproducing under its own name is a no-op that leaves every byte in place
    assert main(["subset", "--workspace", str(workspace.root), "--from-manifest", str(manifest), "--no-progress"]) == 0
    assert "already up to date" in capsys.readouterr().out
    assert _folder_digests(workspace.subsets / "mixed") == first


def test_same_name_different_selection_needs_force(workspace):
    with open_catalog(workspace) as catalog:
        materialise_subset(catalog, SubsetSpec("named", FigureFilter(license_groups=("other",))), progress=False)
        before = _folder_digests(workspace.subsets / "named")
        again = materialise_subset(
            catalog, SubsetSpec("named", FigureFilter(license_groups=("other",))), progress=False
        )
        assert again.unchanged
        with pytest.raises(SubsetExists, match="--force"):
            materialise_subset(
                catalog, SubsetSpec("named", FigureFilter(license_groups=("noncommercial",))), progress=False
            )
        assert _folder_digests(workspace.subsets / "named") == before
        replaced = materialise_subset(
            catalog, SubsetSpec("named", FigureFilter(license_groups=("noncommercial",)), force=True), progress=False
        )
    assert not replaced.unchanged and set(replaced.counts_by_license_group) == {"noncommercial"}
    assert (
        main(
            [
                "subset",
                "--workspace",
                str(workspace.root),
                "--name",
                "named",
                "--license-group",
                "other",
                "--no-progress",
            ]
        )
        == 2
    )


def test_licence_is_verified_row_by_row_before_writing(workspace, monkeypatch):
    """Even if the SQL lost the licence clause, no sample of another group is written."""

    def compile_without_licence(self, selection):
        return compile_filter(dataclasses.replace(selection, license_groups=()))

    monkeypatch.setattr(Catalog, "compile", compile_without_licence)
    with open_catalog(workspace) as catalog, pytest.raises(LicenceViolation, match="licence group"):
        materialise_subset(catalog, SubsetSpec("leaky", FigureFilter(license_groups=("commercial",))), progress=False)
    assert not (workspace.subsets / "leaky").exists()
    assert not list(workspace.tmp.iterdir())


def test_row_check_refuses_a_batch_before_copying_it(tmp_path, workspace):
    batch = pa.RecordBatch.from_pylist(
        [
            {"key": "PMC1_F1_0", "license_group": "commercial", "shard": "shards/000000.tar"},
            {"key": "PMC2_F1_0", "license_group": "noncommercial", "shard": "shards/000000.tar"},
        ]
    )
    output = ShardSeries(tmp_path, 10)
    with pytest.raises(LicenceViolation), open(tmp_path / "keys.txt", "w") as keys:
        copy_batch(batch, SourceShards(workspace), output, frozenset({"commercial"}), keys, None)
    assert output.shards == {} and not list(tmp_path.glob("*.tar"))


def test_catalog_out_of_step_with_shards_is_refused(tmp_path):
    built = build_workspace(tmp_path / "ws", articles=10, seed=31)
    refresh_catalog(built.workspace, search_index=False, progress=False)
    shard = built.workspace.shards / "000000.tar"
    data = bytearray(shard.read_bytes())
    with open_catalog(built.workspace, search_index=False) as catalog:
        row = catalog.preview(FigureFilter(), 1)[0]
        data[row["jpg_offset"] + row["jpg_size"] // 2] ^= 0xFF  # one flipped bit inside the first image
        shard.write_bytes(bytes(data))
        with pytest.raises(SubsetError, match="out of step"):
            materialise_subset(catalog, SubsetSpec("broken"), progress=False)
    assert not (built.workspace.subsets / "broken").exists()


def test_changed_source_shard_blocks_reproduction(tmp_path):
    built = build_workspace(tmp_path / "ws", articles=10, seed=41)
    refresh_catalog(built.workspace, search_index=False, progress=False)
    with open_catalog(built.workspace, search_index=False) as catalog:
        materialise_subset(catalog, SubsetSpec("all"), progress=False)
        shard = built.workspace.shards / "000000.tar"
        shard.write_bytes(shard.read_bytes() + b"\0" * 512)  # same samples, different file
        with pytest.raises(SubsetError, match="source shard"):
            reproduce_subset(catalog, built.workspace.subsets / "all" / "manifest.json", name="all-again")
    assert not (built.workspace.subsets / "all-again").exists()


@pytest.mark.parametrize("name", ["../escape", "a/b", "", ".hidden", "x" * 101])
def test_bad_names_are_refused(name):
    with pytest.raises(SubsetError, match="invalid subset name"):
        SubsetSpec(name)


def test_from_manifest_and_filter_flags_do_not_mix(workspace, capsys):
    assert (
        main(
            ["subset", "--workspace", str(workspace.root), "--from-manifest", "m.json", "--license-group", "commercial"]
        )
        == 2
    )
    assert "not both" in capsys.readouterr().err
    assert main(["subset", "--workspace", str(workspace.root), "--license-group", "commercial"]) == 2
    assert (
        main(["subset", "--workspace", str(workspace.root), "--from-manifest", str(workspace.root / "nowhere.json")])
        == 2
    )


def test_acceptance_on_an_extracted_sample_mirror(tmp_path):
    """The same acceptance on a workspace made by `workbench extract` from the sample mirror."""
    mirror = pytest.importorskip("workbench.mirror")
    mirror.build_sample_mirror(tmp_path / "mirror", 12, seed=5, progress=False)
    root = tmp_path / "ws"
    assert (
        main(
            [
                "extract",
                "--workspace",
                str(root),
                "--packages",
                str(tmp_path / "mirror"),
                "--workers",
                "0",
                "--no-progress",
            ]
        )
        == 0
    )
    assert main(["subset", "--workspace", str(root), "--name", "com", "--where", COMMERCIAL, "--no-progress"]) == 0
    workspace = Workspace.at(root)
    manifest = _check_subset_against_catalog(workspace, "com", FigureFilter(where=COMMERCIAL))
    with open_catalog(workspace) as catalog:
        groups = {group for group, _, _ in catalog.selection_summary()}
    assert manifest["license_groups_present"] == ["commercial"] and len(groups) > 1
    assert (
        main(
            [
                "subset",
                "--workspace",
                str(root),
                "--from-manifest",
                str(workspace.subsets / "com" / "manifest.json"),
                "--name",
                "com2",
                "--no-progress",
            ]
        )
        == 0
    )
    first, second = _folder_digests(workspace.subsets / "com"), _folder_digests(workspace.subsets / "com2")
    first.pop("manifest.json"), second.pop("manifest.json")
    assert first == second


def test_real_pmc_packages_extract_search_and_subset(tmp_path, realdata):
    """Real PMC packages (old and new layouts) through extraction, the catalog, BM25 and a subset."""
    root = tmp_path / "ws"
    assert (
        main(
            [
                "extract",
                "--workspace",
                str(root),
                "--packages",
                str(realdata / "pmc_packages"),
                "--workers",
                "0",
                "--no-progress",
            ]
        )
        == 0
    )
    workspace = Workspace.at(root)
    with open_catalog(workspace) as catalog:
        assert catalog.count() > 0
        hits = catalog.search("sensor", 5)
        assert hits and all(hit.key.startswith("PMC") for hit in hits)
        assert catalog.count(FigureFilter(text="sensor", license_groups=("commercial",))) >= len(hits)
    assert main(["subset", "--workspace", str(root), "--name", "com", "--where", COMMERCIAL, "--no-progress"]) == 0
    _check_subset_against_catalog(workspace, "com", FigureFilter(where=COMMERCIAL))


def test_reparsed_mesh_and_new_labels_reach_the_catalog_and_a_new_subset(tmp_path):
    """Acceptance (issue 8): enrichment rewrites MeSH rows (same row count) and an annotator labels a figure;
    a refresh brings both into the catalog, and a new subset's .json carries them, .jpg/.txt byte-identical."""
    from workbench.annotate.events import Decision, LabelStore
    from workbench.enrich.store import SCHEMA, PubmedStore

    built = build_workspace(tmp_path / "ws", articles=6, seed=31)
    ws = built.workspace
    refresh_catalog(ws, progress=False)
    store = PubmedStore(ws)

    def publish(terms: list[str]) -> None:  # what `enrich` / `enrich --reparse` writes, through the same store
        row = dict.fromkeys(SCHEMA.names)
        row.update(pmid="2000001", status="found", mesh_terms=terms, mesh=[], publication_types=[], reference_pmids=[])
        store.upsert([row])
        store.export_parquet()

    publish(["Humans", "Neoplasms"])
    assert main(["catalog", "refresh", "--workspace", str(ws.root), "--no-progress"]) == 0
    publish(["Humans", "Mice"])  # a reparse: same rows, new content
    with open_catalog(ws) as catalog:  # refreshes on open: the digest of pubmed.parquet changed
        key = catalog.execute("SELECT min(key) FROM figures WHERE pmid = '2000001'").fetchone()[0]
    LabelStore(ws).record(Decision("expert-1", "", "image", key, ("Microscopy",), ("light microscopy",)))
    assert main(["catalog", "refresh", "--workspace", str(ws.root), "--no-progress"]) == 0
    assert main(["subset", "--workspace", str(ws.root), "--name", "now", "--where", "pmid = '2000001'"]) == 0
    manifest = _check_subset_against_catalog(ws, "now", FigureFilter(where="pmid = '2000001'"))
    assert manifest["catalog_state"]
    members = {}
    for shard in sorted((ws.subsets / "now").glob("*.tar")):
        with tarfile.open(shard) as tar:
            members |= {info.name: tar.extractfile(info).read() for info in tar}
    samples = [json.loads(data) for name, data in members.items() if name.endswith(".json")]
    assert samples and all(s["article_mesh_terms"] == ["Humans", "Mice"] for s in samples)
    labelled = json.loads(members[f"{key}.json"])
    assert labelled["image_primary_label"] == ["Microscopy"]
    assert labelled["image_secondary_label"] == ["light microscopy"]
