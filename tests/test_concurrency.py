"""One workspace, many processes: acquire, extract, refresh, readers and subsets side by side (issue 8)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from faulty_server import FaultyServer

from workbench.acquire.state import download_state
from workbench.catalog import FigureFilter, open_catalog
from workbench.cli import main

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
# A notebook-style reader in its own process: keeps one Catalog open and answers "count" lines on stdin.
HOLDER = """
import sys
from workbench.catalog import open_catalog
catalog = open_catalog(sys.argv[1], refresh=False)
print(catalog.count(), flush=True)
for line in sys.stdin:
    print(catalog.count(), flush=True)
"""


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "workbench.cli", *args]


def _run(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(_cli(*args), env=ENV, capture_output=True, text=True, timeout=timeout)


def test_acquire_extract_refresh_readers_and_subsets_run_side_by_side(tmp_path: Path) -> None:
    source, ws = tmp_path / "source", tmp_path / "ws"
    assert main(["sample-mirror", str(source), "--articles", "36", "--seed", "4"]) == 0
    assert main(["acquire", "--source", str(source), "--workspace", str(ws), "--limit", "12", "--no-progress"]) == 0
    assert main(["extract", "--workspace", str(ws), "--workers", "0", "--no-progress"]) == 0
    assert main(["catalog", "refresh", "--workspace", str(ws), "--no-progress"]) == 0
    with open_catalog(ws, refresh=False) as catalog:
        before = catalog.count()
    assert before > 0

    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(ws)], env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    with FaultyServer(source, latency=1.2) as slow:
        acquire = subprocess.Popen(
            _cli("acquire", "--source", slow.url, "--workspace", str(ws), "--concurrency", "1", "--no-progress"),
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert int(holder.stdout.readline()) == before
            # while acquire writes its state: count, search, materialise a subset, extract what is there, refresh
            count = _run("catalog", "count", "--workspace", str(ws), "--license-group", "commercial")
            assert count.returncode == 0, count.stderr
            subset = _run("subset", "--workspace", str(ws), "--name", "side", "--where", "width > 0", "--no-progress")
            assert subset.returncode == 0, subset.stderr
            assert acquire.poll() is None, "acquire should still be running (the server is slow)"
            extract = _run("extract", "--workspace", str(ws), "--workers", "0", "--no-progress")
            assert extract.returncode == 0, extract.stderr
            assert acquire.poll() is None, "acquire should still be running"
            refresh = _run("catalog", "refresh", "--workspace", str(ws), "--no-progress")
            assert refresh.returncode == 0, refresh.stderr
            holder.stdin.write("count\n")
            holder.stdin.flush()
            during = int(holder.stdout.readline())
            assert during > before  # the open reader followed the refreshed file with the packages so far
            out, err = acquire.communicate(timeout=240)
            assert acquire.returncode == 0, err
        finally:
            if acquire.poll() is None:
                acquire.kill()
    state = download_state(ws)
    assert state.height == 36 and set(state["status"]) == {"done"}
    assert main(["extract", "--workspace", str(ws), "--workers", "0", "--no-progress"]) == 0
    assert main(["catalog", "refresh", "--workspace", str(ws), "--no-progress"]) == 0
    holder.stdin.write("count\n")
    holder.stdin.flush()
    after = int(holder.stdout.readline())
    holder.stdin.close()
    holder.wait(timeout=30)
    with open_catalog(ws, refresh=False) as catalog:
        assert after == catalog.count() > during >= before  # all 36 articles, seen by the long-lived reader too
        assert catalog.count(FigureFilter(license_groups=("commercial",))) > 0
    assert (ws / "subsets" / "side" / "manifest.json").is_file()


def test_a_second_acquire_is_told_another_runs(tmp_path: Path) -> None:
    source, ws = tmp_path / "source", tmp_path / "ws"
    assert main(["sample-mirror", str(source), "--articles", "6", "--seed", "5"]) == 0
    with FaultyServer(source, latency=2.0) as slow:
        first = subprocess.Popen(
            _cli("acquire", "--source", slow.url, "--workspace", str(ws), "--concurrency", "1", "--no-progress"),
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            while not (ws / "state" / "acquire.sqlite").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            second = _run("acquire", "--source", slow.url, "--workspace", str(ws), "--no-progress")
            assert second.returncode == 75, second.stderr
            assert "another `workbench acquire` is running" in second.stderr
            assert len(second.stderr.strip().splitlines()) == 1
            first.wait(timeout=120)
            assert first.returncode == 0
        finally:
            if first.poll() is None:
                first.kill()
