"""Extraction resumes cleanly: damaged markers, manifest and plan, a failed stale-flag clear, a busy workspace,
a header-bomb package in the middle of a run, and the full text in shards only when asked."""

from __future__ import annotations

import json
import tarfile
import time

import pyarrow.parquet as pq
import pytest
from hostile import good_package, member_bomb_package
from test_pipeline import _downloads_table, config, figures, make_mirror, shard_bytes

from workbench.cli import main as cli_main
from workbench.errors import ResourceBusy, UserError
from workbench.extract.pipeline import ExtractionConfig, run_extraction
from workbench.locks import exclusive_lock


def test_damaged_markers_are_named_and_their_units_redone(tmp_path):
    for name in "ab":
        make_mirror(tmp_path / name, range(200, 220))
        run_extraction(config(tmp_path / name))
    reference = shard_bytes(tmp_path / "a"), figures(tmp_path / "a")
    shards = tmp_path / "b" / "shards"
    (shards / "000002_stats.json").write_text("")  # a crash between create and write
    (shards / "000003_stats.json").write_text("[]")  # readable, but not a unit's stats
    (shards / "000003.tar").write_bytes(b"garbage")
    report = run_extraction(config(tmp_path / "b"))
    assert report.units_run == 2 and report.new_units == 0
    assert len(report.warnings) == 2
    assert str(shards / "000002_stats.json") in report.warnings[0] and "empty" in report.warnings[0]
    assert str(shards / "000003_stats.json") in report.warnings[1]
    assert str(shards / "000002_stats.json") in report.describe()
    assert (shard_bytes(tmp_path / "b"), figures(tmp_path / "b")) == reference
    assert run_extraction(config(tmp_path / "b")).nothing_to_do


def test_damaged_manifest_counts_as_absent(tmp_path):
    make_mirror(tmp_path, range(1, 9))
    run_extraction(config(tmp_path))
    before = figures(tmp_path)
    manifest = tmp_path / "catalog" / "_extract_manifest.json"
    manifest.write_text('{"units": [')
    report = run_extraction(config(tmp_path))
    assert report.units_run == 0 and report.catalog is not None and figures(tmp_path) == before
    assert json.loads(manifest.read_text())["units"]
    assert run_extraction(config(tmp_path)).nothing_to_do


def test_damaged_plan_is_a_clear_error(tmp_path, capsys):
    make_mirror(tmp_path, range(1, 9))
    run_extraction(config(tmp_path))
    plan = tmp_path / "shards" / "_plan.parquet"
    plan.write_bytes(b"PAR1 not really")
    with pytest.raises(UserError, match="_plan.parquet is damaged"):
        run_extraction(config(tmp_path))
    assert cli_main(["extract", "--workspace", str(tmp_path), "--workers", "0", "--no-progress"]) == 2
    assert str(plan) in capsys.readouterr().err


def test_stale_flags_are_cleared_by_the_next_run_when_clearing_fails(tmp_path, monkeypatch):
    import workbench.acquire.state as state

    numbers = range(400, 406)
    paths = make_mirror(tmp_path, numbers)
    _downloads_table(tmp_path, numbers, {})
    run_extraction(config(tmp_path))
    paths[3].write_text("v2")  # acquisition re-downloaded a newer version and flagged the article stale
    _downloads_table(tmp_path, numbers, {403: "v2"})
    real_clear, calls = state.clear_stale, []

    def clear_stale_failing_once(workspace, pmcids):
        calls.append(list(pmcids))
        if len(calls) == 1:
            raise RuntimeError("database busy")
        real_clear(workspace, pmcids)

    monkeypatch.setattr(state, "clear_stale", clear_stale_failing_once)
    with pytest.raises(RuntimeError, match="database busy"):
        run_extraction(config(tmp_path))
    assert not (tmp_path / "catalog" / "_extract_manifest.json").exists()
    report = run_extraction(config(tmp_path))  # nothing left to extract, but the finish step is redone
    assert report.units_run == 0 and report.catalog is not None
    assert calls == [["PMC403"], ["PMC403"]]
    downloads = state.download_state(tmp_path)
    assert downloads.filter(downloads["pmcid"] == "PMC403")["stale"].to_list() == [False]
    assert run_extraction(config(tmp_path)).nothing_to_do


def test_a_second_extract_on_the_same_workspace_is_busy(tmp_path, capsys):
    make_mirror(tmp_path, range(1, 3))
    with exclusive_lock(tmp_path / "state" / "locks" / "extract.lock", "test holds it"):
        with pytest.raises(ResourceBusy, match="another `workbench extract` is running"):
            run_extraction(config(tmp_path))
        assert cli_main(["extract", "--workspace", str(tmp_path), "--workers", "0", "--no-progress"]) == 75
    assert "busy" in capsys.readouterr().err
    assert run_extraction(config(tmp_path)).units_run == 1


def test_a_header_bomb_is_recorded_and_the_rest_of_the_run_goes_on(tmp_path):
    packages = tmp_path / "packages"
    packages.mkdir()
    good_package(packages)
    member_bomb_package(packages)
    started = time.monotonic()
    report = run_extraction(
        ExtractionConfig(tmp_path / "ws", packages=(packages,), shard_size=1, workers=0, progress=False)
    )
    assert time.monotonic() - started < 10
    assert not report.failed_units and report.units_run == 2
    errors = pq.read_table(tmp_path / "ws" / "catalog" / "errors.parquet").to_pylist()
    assert ("PMC1000020", "too_many_members") in {(e["pmcid"], e["reason"]) for e in errors}
    assert [row["key"] for row in figures(tmp_path / "ws")] == ["PMC1000001_F1_0"]


def _sample_jsons(workspace) -> list[dict]:
    samples = []
    for shard in sorted((workspace / "shards").glob("*.tar")):
        with tarfile.open(shard) as archive:
            for member in archive:
                if member.name.endswith(".json"):
                    samples.append(json.loads(archive.extractfile(member).read()))
    return samples


def test_full_text_goes_into_shards_only_with_the_flag(tmp_path):
    package = good_package(tmp_path)
    base = ["extract", "--packages", str(package), "--workers", "0", "--no-progress"]
    assert cli_main([*base, "--workspace", str(tmp_path / "plain")]) == 0
    assert cli_main([*base, "--workspace", str(tmp_path / "full"), "--full-text-in-shards"]) == 0
    (plain,), (full,) = _sample_jsons(tmp_path / "plain"), _sample_jsons(tmp_path / "full")
    (article,) = pq.read_table(tmp_path / "plain" / "catalog" / "articles.parquet").to_pylist()
    assert "article_text" not in plain and article["text"]
    assert full["article_text"] == article["text"]
