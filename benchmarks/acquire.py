"""Acquisition throughput (packages/s, MB/s) from a local HTTP server at several concurrencies, against a naive
peer measured in the same run: a sequential `requests.get` loop writing files (no verification, no bookkeeping).

    .venv/bin/python benchmarks/acquire.py --articles 300 --concurrency 1 4 16 --latency-ms 20

The server (tests/faulty_server.py, no faults) serves a generated sample mirror (built once, cached under
`--cache`), or with `--real` the real packages of ../shared/realdata copied under many PMCIDs. `--latency-ms`
delays every answer to stand in for a network round trip; on localhost with 0 ms the CPU is the limit.
Every measured run starts from an empty workspace; a final re-run of a finished job checks it sends no
package request.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from faulty_server import FaultyServer, write_mirror  # noqa: E402

from workbench.acquire import AcquireConfig, DownloadConfig, acquire, read_file_list  # noqa: E402


def sample_mirror(cache: Path, articles: int, seed: int) -> Path:
    from workbench.mirror import MirrorConfig, build_sample_mirror

    mirror = cache / f"mirror-{articles}-{seed}"
    build_sample_mirror(mirror, articles, seed, progress=False, config=MirrorConfig(workers=2))
    return mirror


def real_mirror(cache: Path, articles: int, realdata: Path) -> Path:
    mirror = cache / f"real-{articles}"
    if not (mirror / "oa_file_list.csv").is_file():
        packages = sorted((realdata / "pmc_packages").glob("*.tar.gz"))
        write_mirror(mirror, {f"PMC9{index:06d}": packages[index % len(packages)] for index in range(articles)})
    return mirror


def naive_peer(server: FaultyServer, files: list[str], out: Path) -> tuple[float, int]:
    """Seconds and bytes for a plain sequential loop: GET, write, next."""
    started, size = time.perf_counter(), 0
    with requests.Session() as session:
        for index, file in enumerate(files):
            body = session.get(server.url + file, timeout=60).content
            (out / f"{index}.tar.gz").write_bytes(body)
            size += len(body)
    return time.perf_counter() - started, size


def measured_acquire(server: FaultyServer, workspace: Path, concurrency: int) -> tuple[float, int, int]:
    """Seconds, bytes and packages of a full `acquire` (file list, verification, DuckDB bookkeeping included)."""
    config = AcquireConfig(
        workspace=workspace,
        source=server.url,
        oa_service=None,
        progress=False,
        download=DownloadConfig(concurrency=concurrency),
    )
    started = time.perf_counter()
    summary = acquire(config)
    seconds = time.perf_counter() - started
    if summary.exit_code != 0:
        raise SystemExit(f"benchmark run failed:\n{summary.describe()}")
    return seconds, summary.bytes, summary.downloaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--latency-ms", type=float, default=20.0, help="server delay per request (default 20)")
    parser.add_argument("--real", action="store_true", help="serve real packages copied under many names")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "workbench-bench")
    args = parser.parse_args()

    args.cache.mkdir(parents=True, exist_ok=True)
    if args.real:
        mirror = real_mirror(args.cache, args.articles, REPO.parent / "shared" / "realdata")
    else:
        mirror = sample_mirror(args.cache, args.articles, args.seed)
    files = read_file_list(mirror)["file"].to_list()
    total = sum((mirror / file).stat().st_size for file in files)
    print(f"mirror: {len(files)} packages, {total / 1e6:.1f} MB ({mirror}); server latency {args.latency_ms:g} ms")

    scratch = Path(tempfile.mkdtemp(prefix="bench-acquire-", dir=args.cache))
    rows = []
    try:
        with FaultyServer(mirror, latency=args.latency_ms / 1000) as server:
            peer_dir = scratch / "peer"
            peer_dir.mkdir()
            seconds, size = naive_peer(server, files, peer_dir)
            rows.append(("naive sequential requests loop (peer)", seconds, size, len(files)))
            last_workspace = None
            for concurrency in args.concurrency:
                last_workspace = scratch / f"ws-{concurrency}"
                seconds, size, count = measured_acquire(server, last_workspace, concurrency)
                rows.append((f"workbench acquire, concurrency {concurrency}", seconds, size, count))
            server.reset_counts()
            started = time.perf_counter()
            measured_acquire(server, last_workspace, args.concurrency[-1])
            rerun = time.perf_counter() - started
            rerun_requests = server.package_requests()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    peer_rate = rows[0][3] / rows[0][1]
    print(f"{'run':<42} {'seconds':>8} {'packages/s':>11} {'MB/s':>7} {'vs peer':>8}")
    for name, seconds, size, count in rows:
        rate = count / seconds
        print(f"{name:<42} {seconds:>8.2f} {rate:>11.1f} {size / 1e6 / seconds:>7.1f} {rate / peer_rate:>7.2f}x")
    print(f"re-run of the finished job: {rerun:.2f} s, {rerun_requests} package requests")


if __name__ == "__main__":
    main()
