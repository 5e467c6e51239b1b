"""HTTP benchmark of `workbench serve`: POST /search under 32 concurrent clients, and shard streaming MB/s against
Python's `http.server` serving the same file, same run.

The workspace is a sample mirror embedded with a tiny random open_clip model (benchmarks/search.py builds it);
queries are text + licence filter (BM25 + the text tower on image and caption vectors + RRF). Streaming downloads a
`--stream-mb` file placed under WS/shards/ whole, three times from each server, the best run counted.

    .venv/bin/python benchmarks/serve.py                    # 32 clients for 30 s
    .venv/bin/python benchmarks/serve.py --clients 8 --seconds 10
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search import WORDS, make_clip_workspace  # noqa: E402


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(command: list[str], url: str, cwd: Path | None = None) -> subprocess.Popen:
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=2)
            return process
        except requests.ConnectionError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"server did not start: {' '.join(command)}")


def load(url: str, clients: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client(number: int) -> None:
        session, i = requests.Session(), number
        while time.monotonic() < stop_at:
            body = {"text": WORDS[i % len(WORDS)], "k": 10, "filter": {"license_groups": ["commercial"]}}
            started = time.perf_counter()
            try:
                ok = session.post(f"{url}/search", json=body, timeout=60).status_code == 200
            except requests.RequestException:
                ok = False
            with lock:
                latencies.append((time.perf_counter() - started) * 1000)
                errors[0] += not ok
            i += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    return {
        "requests": len(latencies),
        "errors": errors[0],
        "p50": float(np.percentile(latencies, 50)),
        "p95": float(np.percentile(latencies, 95)),
        "qps": len(latencies) / elapsed,
    }


def download_mb_s(url: str, size: int, headers: dict | None = None) -> float:
    best = 0.0
    for _ in range(3):
        started, got = time.perf_counter(), 0
        with requests.get(url, stream=True, timeout=120, headers=headers) as reply:
            reply.raise_for_status()
            for chunk in reply.iter_content(1 << 20):
                got += len(chunk)
        assert got == size, (got, size)
        best = max(best, size / (time.perf_counter() - started) / 1e6)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--articles", type=int, default=60)
    parser.add_argument("--stream-mb", type=int, default=256)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        folder = Path(tmp)
        root = make_clip_workspace(folder, args.articles)
        size = args.stream_mb << 20
        (root / "shards" / "bench.tar").write_bytes(os.urandom(size))
        port, peer_port = free_port(), free_port()
        url, peer = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{peer_port}"
        command = [sys.executable, "-m", "workbench.cli", "serve", "--workspace", str(root), "--port", str(port)]
        server = start([*command, "--concurrency", str(args.clients)], f"{url}/healthz")
        peer_server = start([sys.executable, "-m", "http.server", str(peer_port), "--bind", "127.0.0.1"], peer, root)
        try:
            load(url, 4, 3)  # warm up
            result = load(url, args.clients, args.seconds)
            ours = download_mb_s(f"{url}/shards/bench.tar", size)
            theirs = download_mb_s(f"{peer}/shards/bench.tar", size)
        finally:
            for process in (server, peer_server):
                process.terminate()
                process.wait(10)
    print(f"serve benchmark on {os.cpu_count()} cores")
    print(
        f"  POST /search, {args.clients} clients for {args.seconds:g} s: {result['requests']:,} requests, "
        f"p50 {result['p50']:.0f} ms, p95 {result['p95']:.0f} ms, {result['qps']:.1f} queries/s, "
        f"{result['errors']} errors"
    )
    print(
        f"  GET /shards/ ({args.stream_mb} MB file, best of 3): workbench serve {ours:.0f} MB/s, "
        f"http.server {theirs:.0f} MB/s ({ours / theirs:.2f}x)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
