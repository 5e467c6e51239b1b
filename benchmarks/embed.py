"""Embedding throughput (images/s) of `workbench embed` against a plain loop measured in the same run: read each
shard's images with tarfile, decode with PIL, preprocess, run the same open_clip model (image and caption towers)
at the same batch size, one process. Also the built-in descriptor embedder's images/s.

    .venv/bin/python benchmarks/embed.py --articles 300 --batch-size 32

No weights are downloaded: the open_clip model is a tiny randomly initialised one saved to disk (ViT, width 64,
2 layers, 64 px), so the numbers measure the pipeline (reading, decoding, preprocessing, overlap) more than the
model. `--arch ViT-B-16` saves a random ViT-B/16 instead (what a real run with weights costs per image; for real
weights pass `--spec open_clip:ViT-B-16:/path/to/weights.pt`, and `--device cuda` on a GPU machine).
The plain loop runs twice, with torch's default thread count and with the thread count `workbench embed` gives the
model (the cores its decoding workers leave free); the ratio is against the faster of the two.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TINY = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 4, "layers": 2},
}


def build_workspace(cache: Path, articles: int, seed: int) -> Path:
    from workbench.cli import main

    root = cache / f"ws-{articles}-{seed}"
    if (root / "catalog" / "figures.parquet").exists():
        return root
    mirror = cache / f"mirror-{articles}-{seed}"
    assert main(["sample-mirror", str(mirror), "--articles", str(articles), "--seed", str(seed), "--no-progress"]) == 0
    assert main(["acquire", "--source", str(mirror), "--workspace", str(root), "--no-progress"]) == 0
    assert main(["extract", "--workspace", str(root), "--workers", "0", "--shard-size", "200", "--no-progress"]) == 0
    return root


def random_checkpoint(cache: Path, arch: str) -> str:
    """Save a randomly initialised open_clip model; return its spec."""
    import open_clip
    import torch

    if arch == "tiny":
        config = cache / "tiny-clip-bench.json"
        config.write_text(json.dumps(TINY))
        open_clip.add_model_config(config)
        arch_name, spec_arch = "tiny-clip-bench", str(config)
    else:
        arch_name = spec_arch = arch
    weights = cache / f"{arch_name}-random.pt"
    if not weights.exists():
        torch.manual_seed(0)
        torch.save(open_clip.create_model(arch_name).state_dict(), weights)
    return f"open_clip:{spec_arch}:{weights}"


def run_workbench(root: Path, spec: str, name: str, args: argparse.Namespace) -> tuple[int, float]:
    from workbench.embed.run import EmbedConfig, run_embedding

    shutil.rmtree(root / "embeddings" / name, ignore_errors=True)
    config = EmbedConfig(root, spec, name, device=args.device, batch_size=args.batch_size, progress=False)
    report = run_embedding(config)
    return report.rows, report.seconds


def plain_loop(root: Path, spec: str, args: argparse.Namespace, threads: int | None) -> tuple[int, float, int]:
    """tarfile + PIL + the model's own preprocess, batch by batch, in one process."""
    import torch
    from PIL import Image

    from workbench.embed.models import load_embedder
    from workbench.embed.spec import parse_model_spec

    embedder = load_embedder(parse_model_spec(spec), args.device)
    torch.set_num_threads(threads or os.cpu_count() or 1)
    used = torch.get_num_threads()
    started, count = time.perf_counter(), 0
    images, captions = [], []

    def flush() -> None:
        embedder.encode_images(torch.stack(images))
        embedder.encode_texts(embedder.tokenize(captions))
        images.clear(), captions.clear()

    for shard in sorted((root / "shards").glob("*.tar")):
        with tarfile.open(shard) as tar:
            members = {m.name: m for m in tar if m.isfile()}
            for name in sorted(n for n in members if n.endswith(".jpg")):
                image = Image.open(io.BytesIO(tar.extractfile(members[name]).read())).convert("RGB")
                images.append(embedder.transform(image))
                captions.append(tar.extractfile(members[name[:-4] + ".txt"]).read().decode())
                count += 1
                if len(images) == args.batch_size:
                    flush()
    if images:
        flush()
    return count, time.perf_counter() - started, used


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=300)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--arch", default="tiny", help="tiny (default) or an open_clip architecture, random weights")
    parser.add_argument("--spec", help="a model spec with real weights instead of a random checkpoint")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "workbench-bench-embed")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    root = build_workspace(args.cache, args.articles, args.seed)
    spec = args.spec or random_checkpoint(args.cache, args.arch)
    from workbench.embed.reading import default_workers

    ours_threads = max(1, (os.cpu_count() or 1) - default_workers())
    print(f"workspace {root}; model {spec}; batch {args.batch_size}; device {args.device}; cores {os.cpu_count()}")
    rows, seconds = run_workbench(root, spec, "bench-clip", args)
    ours = rows / seconds
    print(f"workbench embed (API):         {rows} images in {seconds:6.2f} s = {ours:7.1f} images/s")
    best = 0.0
    for threads in (None, ours_threads):
        count, elapsed, used = plain_loop(root, spec, args, threads)
        rate = count / elapsed
        best = max(best, rate)
        print(f"plain PIL loop ({used} threads):   {count} images in {elapsed:6.2f} s = {rate:7.1f} images/s")
    print(f"ratio workbench / best plain loop: {ours / best:.2f}x (goal >= 1.0x on cpu)")
    rows, seconds = run_workbench(root, "builtin", "bench-builtin", args)
    print(f"builtin descriptors (API):     {rows} images in {seconds:6.2f} s = {rows / seconds:7.1f} images/s")


if __name__ == "__main__":
    main()
