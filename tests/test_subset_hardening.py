"""Subsets under hostile manifests, changed metadata and interrupted runs (issue 8)."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import time

import pyarrow.parquet as pq
import pytest
from catalog_fixture import build_workspace

from workbench.catalog import FigureFilter, open_catalog, refresh_catalog
from workbench.catalog.checksums import ChecksumCache, NotAShard
from workbench.catalog.subset import (
    SubsetDiffers,
    SubsetError,
    SubsetSpec,
    clean_stale_work,
    materialise_subset,
    reproduce_subset,
)
from workbench.cli import main
from workbench.errors import UserError


@pytest.fixture
def built(tmp_path):
    fixture = build_workspace(tmp_path / "ws", articles=14, seed=7, pairs_per_shard=12)
    refresh_catalog(fixture.workspace, search_index=False, progress=False)
    return fixture.workspace


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else "absent"


def _tree(folder) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


def _members(folder) -> dict[str, bytes]:
    members = {}
    for shard in sorted(folder.glob("*.tar")):
        with tarfile.open(shard) as tar:
            members.update({info.name: tar.extractfile(info).read() for info in tar})
    return members


def _manifest_naming(workspace, path, target) -> str:
    manifest = json.loads((workspace.subsets / "all" / "manifest.json").read_text())
    manifest["source_shards"] = {str(path): {"sha256": "0" * 64, "bytes": 1}}
    target.write_text(json.dumps(manifest))
    return str(target)


@pytest.mark.parametrize(
    "hostile", ["/etc/shadow", "/dev/zero", "shards/link.tar", "../../etc/passwd", "shards/../catalog.duckdb"]
)
def test_manifest_paths_outside_the_shard_folder_are_refused_unread(built, tmp_path, capsys, hostile):
    workspace = built
    with open_catalog(workspace, search_index=False) as catalog:
        materialise_subset(catalog, SubsetSpec("all"), progress=False)
    (workspace.shards / "link.tar").symlink_to("/dev/zero")
    manifest = _manifest_naming(workspace, hostile, tmp_path / "evil.json")
    cache, database = workspace.cache / "file_sha256.json", workspace.database
    before = (_digest(cache), _digest(database), _tree(workspace.subsets), sorted(os.listdir(workspace.tmp)))
    started = time.perf_counter()
    argv = ["subset", "--workspace", str(workspace.root), "--from-manifest", manifest, "--name", "x", "--no-progress"]
    assert main(argv) == 2
    assert time.perf_counter() - started < 10
    error = capsys.readouterr().err
    assert hostile in error and len(error.strip().splitlines()) == 1
    assert (_digest(cache), _digest(database), _tree(workspace.subsets), sorted(os.listdir(workspace.tmp))) == before
    assert "shadow" not in cache.read_text() and "zero" not in cache.read_text()


def test_symlinks_and_special_files_inside_the_shard_folder_are_refused(built, tmp_path):
    workspace = built
    (workspace.shards / "zero.tar").symlink_to("/dev/zero")
    (workspace.shards / "out.tar").symlink_to(tmp_path / "elsewhere.tar")
    (tmp_path / "elsewhere.tar").write_bytes(b"\0" * 1024)
    os.mkfifo(workspace.shards / "pipe.tar")
    cache = ChecksumCache(workspace)
    for name in ("shards/zero.tar", "shards/out.tar", "shards/pipe.tar", "/etc/shadow", "shards", "catalog.duckdb"):
        with pytest.raises(NotAShard):
            cache.sha256(name)
    assert issubclass(NotAShard, UserError) and issubclass(SubsetError, UserError)
    (workspace.shards / "alias.tar").symlink_to(workspace.shards / "000000.tar")  # resolves inside: fine
    assert cache.sha256("shards/alias.tar") == cache.sha256("shards/000000.tar")


def _change_metadata(workspace) -> None:
    """What `enrich --reparse` + `catalog refresh` do to the catalog: new MeSH terms for every figure."""
    path = workspace.catalog_dir / "figures.parquet"
    table = pq.read_table(path)
    rows = table.to_pylist()
    for row in rows:
        row["article_mesh_terms"] = sorted({*row["article_mesh_terms"], "Reparsed Term"})
    pq.write_table(pq.read_table(path).from_pylist(rows, schema=table.schema), path)
    refresh_catalog(workspace, search_index=False, progress=False)


def test_subset_json_carries_current_metadata_and_reproduction_reports_the_change(built, capsys):
    workspace = built
    selection = FigureFilter(license_groups=("commercial",))
    with open_catalog(workspace, search_index=False) as catalog:
        materialise_subset(catalog, SubsetSpec("com", selection, shard_samples=5), progress=False)
        old_state = catalog.state()
    first = _members(workspace.subsets / "com")
    manifest = workspace.subsets / "com" / "manifest.json"
    assert json.loads(manifest.read_text())["catalog_state"] == old_state
    _change_metadata(workspace)
    with open_catalog(workspace, search_index=False) as catalog:
        assert catalog.state() != old_state
        materialise_subset(catalog, SubsetSpec("com-new", selection, shard_samples=5), progress=False)
        with pytest.raises(SubsetDiffers, match="catalog changed since the manifest"):
            reproduce_subset(catalog, manifest, name="com-again", progress=False)
    new = _members(workspace.subsets / "com-new")
    assert sorted(new) == sorted(first)
    for name, data in new.items():
        if name.endswith((".jpg", ".txt")):
            assert data == first[name]  # byte-identical to the source members
        else:
            assert "Reparsed Term" in json.loads(data)["article_mesh_terms"]
            assert "Reparsed Term" not in json.loads(first[name])["article_mesh_terms"]
    assert not (workspace.subsets / "com-again").exists() and not os.listdir(workspace.tmp)
    argv = ["subset", "--workspace", str(workspace.root), "--from-manifest", str(manifest), "--name", "com-again"]
    assert main([*argv, "--no-progress"]) == 1
    error = capsys.readouterr().err
    assert "000000.tar" in error and "figures" in error and "--force" in error
    assert not (workspace.subsets / "com-again").exists()
    assert main([*argv, "--no-progress", "--force"]) == 0
    assert "kept with --force" in capsys.readouterr().out
    assert _members(workspace.subsets / "com-again") == new


def test_an_identical_rerun_copies_nothing(built, capsys):
    workspace = built
    argv = ["subset", "--workspace", str(workspace.root), "--name", "mine", "--license-group", "commercial"]
    assert main([*argv, "--no-progress"]) == 0
    before = _tree(workspace.subsets)
    workspace.tmp.rmdir()  # no work folder may be created for a re-run
    assert main([*argv, "--no-progress"]) == 0
    assert "already up to date" in capsys.readouterr().out
    assert _tree(workspace.subsets) == before and not workspace.tmp.exists()
    manifest = workspace.subsets / "mine" / "manifest.json"
    argv = ["subset", "--workspace", str(workspace.root), "--from-manifest", str(manifest), "--no-progress"]
    assert main(argv) == 0 and "already up to date" in capsys.readouterr().out
    assert _tree(workspace.subsets) == before and not workspace.tmp.exists()


def test_work_folders_of_interrupted_runs_are_cleaned(built):
    workspace = built
    stale = workspace.tmp / "subset-old-99999-deadbeef"
    (stale / "sub").mkdir(parents=True)
    (stale / "000000.tar").write_bytes(b"partial")
    busy = workspace.tmp / "subset-busy-1-cafecafe"
    busy.mkdir()
    fd = os.open(busy, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a run still in progress
    try:
        with open_catalog(workspace, search_index=False) as catalog:
            materialise_subset(catalog, SubsetSpec("next"), progress=False)
        assert not stale.exists() and busy.exists()
    finally:
        os.close(fd)
    assert clean_stale_work(workspace.tmp) == [busy] and not os.listdir(workspace.tmp)


def test_a_killed_subset_leaves_a_folder_the_next_run_removes(built):
    workspace = built
    script = (
        "import os, sys\n"
        "from workbench.catalog import open_catalog\n"
        "from workbench.catalog import subset_copy\n"
        "from workbench.catalog.subset import SubsetSpec, materialise_subset\n"
        "original = subset_copy.ShardSeries.add\n"
        "def add(self, key, members):\n"
        "    result = original(self, key, members)\n"
        "    os._exit(9)  # killed mid-copy\n"
        "subset_copy.ShardSeries.add = add\n"
        "with open_catalog(sys.argv[1], search_index=False) as catalog:\n"
        "    materialise_subset(catalog, SubsetSpec('killed'), progress=False)\n"
    )
    run = subprocess.run([sys.executable, "-c", script, str(workspace.root)], capture_output=True, timeout=120)
    assert run.returncode == 9, run.stderr.decode()
    assert [p.name.startswith("subset-killed-") for p in workspace.tmp.iterdir()] == [True]
    with open_catalog(workspace, search_index=False) as catalog:
        materialise_subset(catalog, SubsetSpec("killed"), progress=False)
    assert not os.listdir(workspace.tmp) and (workspace.subsets / "killed" / "manifest.json").exists()


def test_nondeterministic_filters_are_refused_for_subsets_only(built, capsys):
    workspace = built
    for clause in ("article_date < today()", "article_date < current_date", "age(article_date) > INTERVAL 1 YEAR"):
        argv = ["subset", "--workspace", str(workspace.root), "--name", "now", "--where", clause, "--no-progress"]
        assert main(argv) == 2
        assert "reproduced byte for byte" in capsys.readouterr().err
    assert not (workspace.subsets / "now").exists()
    with open_catalog(workspace, search_index=False) as catalog:
        assert catalog.count(FigureFilter(where="article_date < today()")) == catalog.count()


def test_the_manifest_file_itself_must_be_a_small_regular_file(built, tmp_path, capsys):
    workspace = built
    os.mkfifo(tmp_path / "pipe.json")
    (tmp_path / "folder.json").mkdir()
    for manifest in ("/dev/zero", str(tmp_path / "pipe.json"), str(tmp_path / "folder.json")):
        started = time.perf_counter()
        argv = ["subset", "--workspace", str(workspace.root), "--from-manifest", manifest, "--no-progress"]
        assert main(argv) == 2
        assert time.perf_counter() - started < 10
        assert manifest in capsys.readouterr().err
    assert not workspace.subsets.exists()


def test_shard_statistics_that_are_not_regular_files_are_not_read(built):
    workspace = built
    stats = workspace.shards / "000000_stats.json"
    stats.unlink(missing_ok=True)
    stats.symlink_to("/dev/zero")
    digest, size = ChecksumCache(workspace).sha256("shards/000000.tar")
    assert digest == hashlib.sha256((workspace.shards / "000000.tar").read_bytes()).hexdigest()


def test_symlink_loops_are_refused_not_crashing(built):
    workspace = built
    (workspace.shards / "loop.tar").symlink_to(workspace.shards / "loop.tar")
    with pytest.raises(NotAShard):
        ChecksumCache(workspace).sha256("shards/loop.tar")


def test_same_selection_after_a_catalog_change(built):
    """Same bytes: only the manifest's catalog_state is renewed. Different bytes: --force is needed."""
    workspace = built
    spec = SubsetSpec("same", FigureFilter(license_groups=("commercial",)))
    with open_catalog(workspace, search_index=False) as catalog:
        materialise_subset(catalog, spec, progress=False)
    manifest = workspace.subsets / "same" / "manifest.json"
    shards = {p.name: p.stat().st_mtime_ns for p in (workspace.subsets / "same").glob("*.tar")}
    articles = workspace.catalog_dir / "articles.parquet"
    articles.write_bytes(articles.read_bytes())  # a new fingerprint for a table subsets do not read
    refresh_catalog(workspace, search_index=False, progress=False)
    with open_catalog(workspace, search_index=False) as catalog:
        assert json.loads(manifest.read_text())["catalog_state"] != catalog.state()
        assert materialise_subset(catalog, spec, progress=False).unchanged
        assert json.loads(manifest.read_text())["catalog_state"] == catalog.state()
    assert {p.name: p.stat().st_mtime_ns for p in (workspace.subsets / "same").glob("*.tar")} == shards
    _change_metadata(workspace)
    with open_catalog(workspace, search_index=False) as catalog:
        with pytest.raises(SubsetError, match="older catalog state.*figures.*--force"):
            materialise_subset(catalog, spec, progress=False)
        assert {p.name: p.stat().st_mtime_ns for p in (workspace.subsets / "same").glob("*.tar")} == shards
        result = materialise_subset(catalog, SubsetSpec(spec.name, spec.selection, force=True), progress=False)
    assert not result.unchanged and not os.listdir(workspace.tmp)
    assert all(
        "Reparsed Term" in json.loads(m)["article_mesh_terms"]
        for n, m in _members(result.path).items()
        if n.endswith(".json")
    )


def test_a_damaged_subset_is_repaired_by_a_rerun(built):
    workspace = built
    spec = SubsetSpec("repair", shard_samples=10)
    with open_catalog(workspace, search_index=False) as catalog:
        first = materialise_subset(catalog, spec, progress=False)
        before = _members(first.path)
        (first.path / "000001.tar").unlink()
        again = materialise_subset(catalog, spec, progress=False)
    assert not again.unchanged and _members(again.path) == before and not os.listdir(workspace.tmp)
