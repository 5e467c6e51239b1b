"""End-to-end extraction throughput (figures/s per worker) and peak memory on a sample mirror, against a naive
serial baseline measured in the same run: pubmed_parser captions + Pillow re-encode + webdataset.TarWriter.

    .venv/bin/python benchmarks/extract.py --articles 2000 --workers 0 1 2

Each measured run happens in a fresh subprocess whose process tree (Dask workers included) is sampled for
resident memory; the sample mirror is built once and cached (`--cache`).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent


def build_mirror(cache: Path, articles: int, seed: int) -> Path:
    from workbench.mirror import MirrorConfig, build_sample_mirror

    mirror = cache / f"mirror-{articles}-{seed}"
    summary = build_sample_mirror(
        mirror, articles, seed, progress=False, config=MirrorConfig(workers=os.cpu_count() or 1)
    )
    print(
        f"sample mirror: {summary.articles} articles, {summary.graphics} graphics, {summary.bytes / 1e6:.0f} MB "
        f"({mirror})"
    )
    return mirror


def naive_baseline(mirror: Path, out: Path) -> dict:
    """What a quick script would do: per package, parse captions with pubmed_parser, re-encode every figure with
    Pillow, write jpg/txt/json with webdataset.TarWriter (one shard), all in one process."""
    import pubmed_parser
    import webdataset
    from PIL import Image

    started, pairs = time.perf_counter(), 0
    packages = sorted(mirror.rglob("*.tar.gz"))
    with webdataset.TarWriter(str(out / "naive.tar")) as sink:
        for package in packages:
            with tarfile.open(package) as tar:
                members = {m.name: m for m in tar.getmembers() if m.isfile()}
                nxml = next((n for n in members if n.endswith(".nxml")), None)
                if nxml is None:
                    continue
                captions = pubmed_parser.parse_pubmed_caption(io.BytesIO(tar.extractfile(members[nxml]).read()))
                for index, figure in enumerate(captions or []):
                    stem = f"{nxml.rsplit('/', 1)[0]}/{figure['graphic_ref']}"
                    name = next((n for n in (stem, stem + ".jpg", stem + ".png", stem + ".tif") if n in members), None)
                    if name is None:
                        continue
                    with Image.open(io.BytesIO(tar.extractfile(members[name]).read())) as image:
                        buffer = io.BytesIO()
                        image.convert("RGB").save(buffer, "JPEG", quality=95)
                    key = f"PMC{figure['pmc']}_{index}"
                    sink.write(
                        {
                            "__key__": key,
                            "jpg": buffer.getvalue(),
                            "txt": figure["fig_caption"],
                            "json": {k: v for k, v in figure.items() if isinstance(v, str)},
                        }
                    )
                    pairs += 1
    return {"pairs": pairs, "seconds": time.perf_counter() - started, "workers": 1}


def workbench_run(mirror: Path, out: Path, workers: int, shard_size: int) -> dict:
    from workbench.extract.pipeline import ExtractionConfig, run_extraction

    os.symlink(mirror, out / "mirror")
    started = time.perf_counter()
    report = run_extraction(ExtractionConfig(workspace=out, workers=workers, shard_size=shard_size, progress=False))
    if report.failed_units:
        raise SystemExit(f"work units failed: {report.failed_units}")
    return {
        "pairs": report.pairs_written,
        "seconds": time.perf_counter() - started,
        "workers": max(workers, 1),
        "packages": report.packages_done,
        "errors": report.catalog.errors if report.catalog else 0,
    }


def measured(command: list[str]) -> dict:
    """Run `command`, sampling the RSS of its whole process tree; returns its JSON result plus peak memory and the
    CPU seconds the tree used (robust to other load on the machine, unlike wall time)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=REPO)
    root, peak_total, peak_one, done = psutil.Process(process.pid), 0, 0, threading.Event()

    def sample() -> None:
        nonlocal peak_total, peak_one
        while not done.is_set():
            try:
                tree = [root, *root.children(recursive=True)]
                rss = [p.memory_info().rss for p in tree if p.is_running()]
            except psutil.Error:
                rss = []
            peak_total, peak_one = max(peak_total, sum(rss)), max([peak_one, *rss])
            done.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = process.communicate()
    done.set()
    sampler.join()
    if process.returncode:
        raise SystemExit(f"{' '.join(command)} failed with status {process.returncode}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result = json.loads(output.strip().splitlines()[-1])
    return result | {"cpu_seconds": cpu, "peak_rss_mb": peak_total / 2**20, "peak_process_rss_mb": peak_one / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=2000, help="sample-mirror articles (default 2000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[0, 1, os.cpu_count() or 1],
        help="workbench modes to time: 0 = in-process, N = Dask LocalCluster of N processes",
    )
    parser.add_argument("--shard-size", type=int, default=1000, help="pairs per shard (default 1000)")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "workbench-bench")
    parser.add_argument("--one", nargs=3, metavar=("KIND", "MIRROR", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        kind, mirror, out = args.one
        result = (
            naive_baseline(Path(mirror), Path(out))
            if kind == "naive"
            else workbench_run(Path(mirror), Path(out), int(kind), args.shard_size)
        )
        print(json.dumps(result))
        return

    mirror = build_mirror(args.cache, args.articles, args.seed)
    rows = []
    for kind in ["naive", *map(str, args.workers)]:
        with tempfile.TemporaryDirectory(dir=args.cache) as out:
            command = [sys.executable, __file__, "--shard-size", str(args.shard_size), "--one", kind, str(mirror), out]
            result = measured(command)
        label = (
            "naive serial (pubmed_parser+Pillow+TarWriter)"
            if kind == "naive"
            else (
                "workbench in-process (--workers 0)" if kind == "0" else f"workbench Dask LocalCluster --workers {kind}"
            )
        )
        rows.append((label, result))
        print(f"  {label}: {result['pairs']} pairs in {result['seconds']:.1f} s", flush=True)

    naive_wall = rows[0][1]["pairs"] / rows[0][1]["seconds"]
    naive_cpu = rows[0][1]["pairs"] / rows[0][1]["cpu_seconds"]
    print(
        f"\n{os.cpu_count()} CPU cores, load average now {os.getloadavg()[0]:.1f}; {args.articles} articles. "
        "pairs/CPU-s = pairs per second of CPU time of the whole process tree (Dask workers included):\n"
        "the per-core rate, robust to other load; wall-clock figures depend on what else runs.\n"
    )
    print(
        f"{'mode':<48} {'workers':>7} {'pairs':>6} {'wall s':>7} {'pairs/s':>8} {'/worker':>8} {'CPU s':>7} "
        f"{'pairs/CPU-s':>11} {'vs naive (wall, CPU)':>21} {'peak RSS MB total/largest':>26}"
    )
    for label, r in rows:
        rate = r["pairs"] / r["seconds"]
        per_cpu = r["pairs"] / r["cpu_seconds"]
        print(
            f"{label:<48} {r['workers']:>7} {r['pairs']:>6} {r['seconds']:>7.1f} {rate:>8.0f} "
            f"{rate / r['workers']:>8.0f} {r['cpu_seconds']:>7.1f} {per_cpu:>11.0f} "
            f"{rate / naive_wall:>9.2f}x {per_cpu / naive_cpu:>9.2f}x "
            f"{r['peak_rss_mb']:>16.0f} / {r['peak_process_rss_mb']:.0f}"
        )


if __name__ == "__main__":
    main()
