"""`workbench acquire` against a faulty local server: faults, moved and closed articles, kill -9, updates."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest
from faulty_server import (
    FaultyServer,
    MirrorEntry,
    drop_mid_body,
    oa_error_answer,
    oa_record_answer,
    package_path,
    sha256_of,
    stall,
    status,
    truncated_body,
    write_file_list,
    write_mirror,
)
from hostile import measure_in_subprocess, member_bomb_package

from workbench.acquire import (
    AcquireConfig,
    AcquireStopped,
    DownloadConfig,
    RetryPolicy,
    Selection,
    acquire,
    clear_stale,
    download_state,
    stop_on_failure,
)
from workbench.acquire.oaservice import package_path_from_answer
from workbench.cli import main
from workbench.retry import PermanentError

REPO = Path(__file__).resolve().parent.parent
FAST = ["--backoff", "0.01", "--timeout", "2", "--no-progress"]
MOVED, CLOSED = "PMC9000001", "PMC9000002"


def real_packages(realdata: Path) -> dict[str, Path]:
    return {path.name.removesuffix(".tar.gz"): path for path in sorted((realdata / "pmc_packages").glob("*.tar.gz"))}


def mirror_files(workspace: Path) -> dict[str, str]:
    """Every file under WS/mirror (relative path -> sha256)."""
    mirror = workspace / "mirror"
    return {str(path.relative_to(mirror)): sha256_of(path) for path in mirror.rglob("*") if path.is_file()}


def fast_config(workspace: Path, server: FaultyServer, **overrides: object) -> AcquireConfig:
    download = DownloadConfig(timeout=2, retry=RetryPolicy(backoff_base=0.01))
    settings = {"workspace": workspace, "source": server.url, "oa_service": server.oa_service_url, "progress": False}
    return AcquireConfig(download=download, **{**settings, **overrides})


@pytest.fixture
def served(realdata: Path, tmp_path: Path) -> tuple[Path, list[MirrorEntry]]:
    """The real packages under oa_package/xx/yy/, plus a moved article and one that is not open access."""
    root = tmp_path / "server"
    entries = write_mirror(root, real_packages(realdata))
    moved_to = "oa_package/ff/ee/PMC9000001.tar.gz"
    (root / moved_to).parent.mkdir(parents=True)
    (root / moved_to).write_bytes((realdata / "pmc_packages" / "PMC11518443.tar.gz").read_bytes())
    entries += [MirrorEntry(MOVED, package_path(MOVED)), MirrorEntry(CLOSED, package_path(CLOSED))]
    write_file_list(root, entries, header=False)
    return root, entries


def test_faulty_server_run_then_rerun_sends_no_package_request(served, tmp_path: Path) -> None:
    root, entries = served
    workspace = tmp_path / "ws"
    real = [entry for entry in entries if entry.pmcid not in (MOVED, CLOSED)]
    with FaultyServer(root) as server:
        server.serve_oa_service(moved={MOVED: "oa_package/ff/ee/PMC9000001.tar.gz"}, not_open_access={CLOSED})
        server.inject(real[0].file, status(500), status(503))
        server.inject(real[1].file, drop_mid_body(0.3))
        server.inject(real[2].file, truncated_body(0.8))
        server.inject(real[3].file, stall(1.5))
        args = [
            "acquire",
            "--source",
            server.url,
            "--workspace",
            str(workspace),
            "--oa-service",
            server.oa_service_url,
            "--concurrency",
            "3",
            *FAST,
            "--timeout",
            "0.5",
        ]
        assert main(args) == 1  # the closed article failed for good

        expected = {entry.file: sha256_of(root / entry.file) for entry in real}
        expected[package_path(MOVED)] = sha256_of(root / "oa_package/ff/ee/PMC9000001.tar.gz")
        assert mirror_files(workspace) == expected  # each fetchable package once, byte-identical, nothing else
        assert list((workspace / "tmp" / "acquire").iterdir()) == []

        state = download_state(workspace)
        assert state.height == 6
        rows = {row["pmcid"]: row for row in state.iter_rows(named=True)}
        assert rows[CLOSED]["status"] == "failed"
        assert rows[CLOSED]["reason"] == "not_open_access"
        assert f"identifier '{CLOSED}' is not Open Access" in rows[CLOSED]["error"]
        assert rows[MOVED]["status"] == "done"
        assert rows[MOVED]["source_url"].endswith("oa_package/ff/ee/PMC9000001.tar.gz")
        assert rows[real[0].pmcid]["attempts"] == 3
        assert rows[real[1].pmcid]["attempts"] == 2
        for entry in real:
            assert rows[entry.pmcid]["sha256"] == expected[entry.file]
            assert rows[entry.pmcid]["bytes"] == (root / entry.file).stat().st_size
        assert server.requests["/pmc/utils/oa/oa.fcgi"] == 2

        server.reset_counts()
        assert main(args) == 1
        assert server.package_requests() == 0
        assert server.requests["/pmc/utils/oa/oa.fcgi"] == 0
        assert mirror_files(workspace) == expected


def test_exhausted_retries_fail_then_retry_failed_recovers(served, tmp_path: Path) -> None:
    root, entries = served
    workspace = tmp_path / "ws"
    target = entries[0]
    with FaultyServer(root) as server:
        server.inject(target.file, *[status(500)] * 3)
        config = fast_config(workspace, server, selection=Selection(pmcids=(target.pmcid, entries[1].pmcid)))
        config = replace(config, download=DownloadConfig(retry=RetryPolicy(attempts=3, backoff_base=0.01)))
        summary = acquire(config)
        assert summary.exit_code == 1
        assert summary.failures_by_reason == {"http_500": 1}
        row = download_state(workspace).filter(pl.col("pmcid") == target.pmcid).row(0, named=True)
        assert (row["status"], row["attempts"], row["reason"]) == ("failed", 3, "http_500")

        server.reset_counts()
        assert acquire(config).exit_code == 1 and server.package_requests() == 0  # failed stays failed ...
        summary = acquire(replace(config, retry_failed=True))  # ... unless asked
        assert summary.exit_code == 0 and summary.downloaded == 1 and summary.plan.retried == 1
        assert server.package_requests() == 1
        row = download_state(workspace).filter(pl.col("pmcid") == target.pmcid).row(0, named=True)
        assert (row["status"], row["attempts"], row["reason"]) == ("done", 4, None)


def test_corrupt_package_is_not_placed(served, tmp_path: Path) -> None:
    root, entries = served
    (root / entries[0].file).write_bytes(b"\x1f\x8b" + b"not really gzip" * 100)
    with FaultyServer(root) as server:
        config = fast_config(tmp_path / "ws", server, selection=Selection(pmcids=(entries[0].pmcid,)))
        summary = acquire(config)
    assert summary.failures_by_reason == {"bad_archive": 1}
    assert mirror_files(tmp_path / "ws") == {}


def test_stop_on_failure_policy(served, tmp_path: Path) -> None:
    root, _ = served
    with FaultyServer(root) as server:
        server.serve_oa_service(not_open_access={CLOSED})
        config = fast_config(tmp_path / "ws", server, selection=Selection(pmcids=(CLOSED,)), on_failure=stop_on_failure)
        with pytest.raises(AcquireStopped, match="not_open_access"):
            acquire(config)
    assert download_state(tmp_path / "ws")["status"].to_list() == ["failed"]


def test_incremental_update_fetches_only_new_or_changed(realdata: Path, tmp_path: Path) -> None:
    packages = real_packages(realdata)
    names = list(packages)
    root, workspace = tmp_path / "server", tmp_path / "ws"
    entries = write_mirror(root, {name: packages[name] for name in names[:3]})
    with FaultyServer(root) as server:
        config = fast_config(workspace, server)
        assert acquire(config).downloaded == 3

        updated, moved, same = entries
        (root / updated.file).write_bytes(packages[names[3]].read_bytes())  # new content, same path
        moved_file = "oa_package/00/11/" + Path(moved.file).name
        (root / moved_file).parent.mkdir(parents=True)
        (root / moved_file).write_bytes((root / moved.file).read_bytes())
        new = MirrorEntry("PMC7777777", package_path("PMC7777777"))
        (root / new.file).parent.mkdir(parents=True, exist_ok=True)
        (root / new.file).write_bytes(packages[names[0]].read_bytes())
        newer = MirrorEntry(updated.pmcid, updated.file, last_updated="2024-06-01 10:00:00")
        write_file_list(root, [newer, MirrorEntry(moved.pmcid, moved_file), same, new])

        server.reset_counts()
        summary = acquire(config)
        assert (summary.plan.new, summary.plan.changed, summary.plan.stale) == (1, 2, 2)
        assert server.package_requests() == 3
        assert server.requests["/" + same.file] == 0
        files = mirror_files(workspace)
        assert set(files) == {updated.file, moved_file, same.file, new.file}  # the old path of `moved` is gone
        assert files[updated.file] == sha256_of(packages[names[3]])

        state = {row["pmcid"]: row for row in download_state(workspace).iter_rows(named=True)}
        assert state[updated.pmcid]["stale"] and state[updated.pmcid]["previous_file"] == updated.file
        assert state[moved.pmcid]["stale"] and state[moved.pmcid]["previous_file"] == moved.file
        assert not state[same.pmcid]["stale"] and not state[new.pmcid]["stale"]
        assert str(state[updated.pmcid]["last_updated"]) == "2024-06-01 10:00:00"

        clear_stale(workspace, [updated.pmcid])  # what extraction calls after re-extracting
        assert not download_state(workspace).filter(pl.col("pmcid") == updated.pmcid)["stale"][0]

        server.reset_counts()
        assert acquire(config).downloaded == 0 and server.package_requests() == 0


def test_missing_mirror_file_is_fetched_again(served, tmp_path: Path) -> None:
    root, entries = served
    workspace = tmp_path / "ws"
    with FaultyServer(root) as server:
        config = fast_config(workspace, server, selection=Selection(limit=2))
        acquire(config)
        (workspace / "mirror" / entries[0].file).unlink()
        server.reset_counts()
        summary = acquire(config)
        assert summary.plan.missing_on_disk == 1 and server.package_requests() == 1
        assert summary.exit_code == 0


def test_local_folder_source(served, tmp_path: Path) -> None:
    root, entries = served
    workspace = tmp_path / "ws"
    config = AcquireConfig(
        workspace=workspace,
        source=str(root),
        oa_service=None,
        progress=False,
        selection=Selection(license_groups=("commercial",), limit=4),
    )
    summary = acquire(config)
    assert summary.exit_code == 0 and summary.done == 4
    assert mirror_files(workspace) == {entry.file: sha256_of(root / entry.file) for entry in entries[:4]}


def test_header_bomb_package_is_refused_and_the_others_are_fetched(served, tmp_path: Path) -> None:
    root, entries = served
    real = [entry for entry in entries if entry.pmcid not in (MOVED, CLOSED)]
    bomb = member_bomb_package(tmp_path, pmcid=real[0].pmcid)
    (root / real[0].file).write_bytes(bomb.read_bytes())
    workspace = tmp_path / "ws"
    selection = Selection(pmcids=tuple(entry.pmcid for entry in real))
    summary = acquire(AcquireConfig(workspace=workspace, source=str(root), progress=False, selection=selection))
    assert summary.failures_by_reason == {"too_many_members": 1} and summary.done == len(real) - 1
    assert real[0].file not in mirror_files(workspace) and len(mirror_files(workspace)) == len(real) - 1
    failed = download_state(workspace).filter(pl.col("status") == "failed")
    assert failed["pmcid"].to_list() == [real[0].pmcid]


def test_verifying_a_million_empty_members_is_fast_and_small(tmp_path: Path) -> None:
    bomb = member_bomb_package(tmp_path)
    statement = (
        "from pathlib import Path\n"
        "try:\n"
        f"    verify_package(Path({str(bomb)!r})); result = 'verified'\n"
        "except FetchError as error:\n"
        "    result = [type(error).__name__, error.reason, error.detail]\n"
    )
    measured = measure_in_subprocess(statement)
    assert measured["result"] == ["PermanentError", "too_many_members", f"{bomb.name}: more than 10000 members"]
    assert measured["seconds"] < 10 and measured["peak_rss_mb"] < 500, measured


def test_bad_input_exits_2_and_keeps_state(served, tmp_path: Path, capsys) -> None:
    root, _ = served
    workspace = tmp_path / "ws"
    assert (
        main(
            ["acquire", "--source", str(root), "--workspace", str(workspace), "--oa-service", "", "--limit", "2", *FAST]
        )
        == 0
    )
    before = download_state(workspace)
    assert main(["acquire", "--source", str(tmp_path / "nowhere"), "--workspace", str(workspace)]) == 2
    assert "is neither an http(s) URL nor an existing folder" in capsys.readouterr().err
    assert main(["acquire", "--source", str(root), "--workspace", str(workspace), "--license-group", "free"]) == 2
    assert main(["acquire", "--source", str(root), "--workspace", str(workspace), "--since", "last week"]) == 2
    text = (root / "oa_file_list.csv").read_bytes()
    (root / "oa_file_list.csv").write_bytes(text[:-5])
    assert main(["acquire", "--source", str(root), "--workspace", str(workspace), *FAST]) == 2
    assert "is cut off" in capsys.readouterr().err
    assert download_state(workspace).equals(before)


def test_kill_9_then_rerun_completes_exactly(realdata: Path, tmp_path: Path) -> None:
    packages = real_packages(realdata)
    copies = {f"PMC8{index:06d}": packages[name] for index, name in enumerate(list(packages) * 3)}
    root, workspace = tmp_path / "server", tmp_path / "ws"
    entries = write_mirror(root, copies)
    expected = {entry.file: sha256_of(root / entry.file) for entry in entries}
    args = ["acquire", "--workspace", str(workspace), "--concurrency", "3", *FAST]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with FaultyServer(root, bytes_per_second=1e6) as slow:
        process = subprocess.Popen(
            [sys.executable, "-m", "workbench.cli", *args, "--source", slow.url],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while not list((workspace / "mirror").rglob("*.tar.gz")) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        process.send_signal(signal.SIGKILL)
        process.wait()
    placed = mirror_files(workspace)
    assert 0 < len(placed) < len(entries), "the kill should land mid-run"
    assert all(expected[file] == digest for file, digest in placed.items())  # only whole packages in the mirror

    with FaultyServer(root) as server:
        rerun = subprocess.run(
            [sys.executable, "-m", "workbench.cli", *args, "--source", server.url],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert rerun.returncode == 0, rerun.stderr
        assert server.package_requests() <= len(entries) - len(placed) + 3  # at most the in-flight ones again
        assert mirror_files(workspace) == expected
        assert list((workspace / "tmp" / "acquire").iterdir()) == []
        server.reset_counts()
        assert main([*args, "--source", server.url]) == 0
        assert server.package_requests() == 0
    state = download_state(workspace)
    assert state.height == len(entries) and set(state["status"]) == {"done"}


def test_sample_mirror_if_available(tmp_path: Path) -> None:
    mirror = pytest.importorskip("workbench.mirror")
    if not hasattr(mirror, "build_sample_mirror"):
        pytest.skip("workbench.mirror.build_sample_mirror is not there yet")
    root = tmp_path / "sample"
    mirror.build_sample_mirror(root, articles=12, seed=1, progress=False)
    with FaultyServer(root) as server:
        summary = acquire(fast_config(tmp_path / "ws", server))
    listed = pl.read_csv(root / "oa_file_list.csv")
    assert summary.exit_code == 0 and summary.done == listed.height == 12
    expected = {file: sha256_of(root / file) for file in listed["File"]}
    assert mirror_files(tmp_path / "ws") == expected


def test_oa_service_answers() -> None:
    answer = oa_record_answer("PMC13900", "oa_package/08/e0/PMC13900.tar.gz").decode()
    assert package_path_from_answer(answer, "PMC13900") == "oa_package/08/e0/PMC13900.tar.gz"
    with pytest.raises(PermanentError, match="idIsNotOpenAccess: identifier 'PMC1' is not Open Access") as error:
        package_path_from_answer(oa_error_answer("PMC1").decode(), "PMC1")
    assert error.value.reason == "not_open_access"
    pdf_only = (
        '<OA><records><record id="PMC2"><link format="pdf" href="ftp://x/pub/pmc/a.pdf"/></record></records></OA>'
    )
    with pytest.raises(PermanentError, match="no tgz package"):
        package_path_from_answer(pdf_only, "PMC2")


def test_cli_selection_options(served, tmp_path: Path) -> None:
    root, entries = served
    workspace = tmp_path / "ws"
    ids = tmp_path / "ids.txt"
    ids.write_text(f"{entries[0].pmcid}\n{entries[1].pmcid}  # two wanted\n")
    base = ["acquire", "--source", str(root), "--workspace", str(workspace), "--oa-service", "", *FAST]
    assert main([*base, "--pmcid-file", str(ids), "--license-group", "commercial,noncommercial"]) == 0
    assert sorted(download_state(workspace)["pmcid"]) == sorted([entries[0].pmcid, entries[1].pmcid])
    assert main([*base, "--pmcids", "PMC424242"]) == 1  # not in the file list: the user must look
    assert main([*base, "--sample", "2", "--seed", "5", "--license-group", "other"]) == 0
    assert download_state(workspace).height == 2
