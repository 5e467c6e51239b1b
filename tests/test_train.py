"""`workbench train`: open_clip_train on a split subset, resume after kill -9, http and pipe: inputs, the torchrun
command of --gpus N, bad input. A micro CLIP (random init) keeps every run to seconds on a CPU."""

from __future__ import annotations

import functools
import http.server
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from workbench.cli import main

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip_train.main")

MICRO = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
RECIPE = """\
model: micro-clip.json
epochs: 1
batch_size: 8
lr: 0.001
wd: 0.1
warmup: 2
precision: fp32
workers: 0
seed: 0
log_every_n_steps: 1
save_frequency: 0
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict[str, Path]:
    """A 16-article sample workspace split by article, and a micro recipe."""
    base = tmp_path_factory.mktemp("train")
    mirror, ws = base / "mirror", base / "ws"
    assert main(["sample-mirror", str(mirror), "--articles", "16", "--seed", "2", "--no-progress"]) == 0
    assert main(["acquire", "--source", str(mirror), "--workspace", str(ws), "--no-progress"]) == 0
    assert main(["extract", "--workspace", str(ws), "--workers", "0", "--no-progress"]) == 0
    split = ["--split", "train=0.7,val=0.15,test=0.15", "--seed", "1", "--shard-samples", "16"]
    assert main(["subset", "--workspace", str(ws), "--name", "demo", *split, "--no-progress"]) == 0
    (base / "micro-clip.json").write_text(json.dumps(MICRO))
    (base / "micro.yaml").write_text(RECIPE)
    return {"ws": ws, "recipe": base / "micro.yaml", "base": base}


def _train(setup: dict[str, Path], *args: str) -> list[str]:
    return [sys.executable, "-m", "workbench.cli", "train", "--workspace", str(setup["ws"]),
            "--recipe", str(setup["recipe"]), "--no-progress", *args]  # fmt: skip


def _run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


def test_train_resumes_after_kill_9_and_records_the_run(setup) -> None:
    command = _train(setup, "--subset", "demo/train", "--name", "k9", "--epochs", "4")
    folder = setup["ws"] / "training" / "k9"
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while not (folder / "checkpoints" / "epoch_latest.pt").exists() and process.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run finished before the kill: make it longer"
    done = _run(command)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "resumed after epoch" in done.stdout and "trained epochs" in done.stdout
    latest = torch.load(folder / "checkpoints" / "epoch_latest.pt", map_location="cpu", weights_only=False)
    assert latest["epoch"] == 4 and (folder / "checkpoints" / "epoch_4.pt").is_file()
    params = json.loads((folder / "params.json").read_text())
    assert params["seed"] == 0 and params["model"] == {
        "architecture": "micro-clip", "config": "micro-clip.json", "pretrained": None
    }  # fmt: skip
    manifest = setup["ws"] / "subsets" / "demo" / "train" / "manifest.json"
    assert params["data"]["manifests"][0]["manifest"] == str(manifest)
    assert params["data"]["manifests"][0]["split"] == "train" and params["code_version"]["workbench"]
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    epochs = [r["epoch"] for r in records if r["kind"] == "train"]
    assert set(epochs) == {0, 1, 2, 3} and epochs == sorted(epochs), "steps re-run after the kill are not doubled"
    again = _run(command)  # finished: nothing to train
    assert again.returncode == 0 and "already trained" in again.stdout
    other = _run(_train(setup, "--subset", "demo/train", "--name", "k9", "--lr", "0.01"))
    assert other.returncode == 2 and "exists with other parameters" in other.stderr
    embed = _run([sys.executable, "-m", "workbench.cli", "embed", "--workspace", str(setup["ws"]), "--model",
                  "run:k9", "--subset", "demo/test", "--no-progress", "--num-workers", "0"])  # fmt: skip
    assert embed.returncode == 0, embed.stderr[-2000:]
    card = json.loads((setup["ws"] / "embeddings" / "run-k9" / "card.json").read_text())
    assert card["checkpoint"] == str(folder / "checkpoints" / "epoch_latest.pt")


def test_train_from_http_urls_and_a_pipe_command(setup) -> None:
    train = setup["ws"] / "subsets" / "demo" / "train"
    shards = sorted(p.name for p in train.glob("*.tar"))
    pattern = "{" + shards[0][:-4] + ".." + shards[-1][:-4] + "}.tar"
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(train))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{pattern}"
        result = _run(_train(setup, "--data", url, "--name", "web"))  # sizes.json fetched beside the shards
    finally:
        server.shutdown()
    assert result.returncode == 0, result.stderr[-2000:]
    samples = sum(json.loads((train / "sizes.json").read_text()).values())
    params = json.loads((setup["ws"] / "training" / "web" / "params.json").read_text())
    assert params["data"]["samples"] == samples and params["data"]["train_data"] == url
    assert (setup["ws"] / "training" / "web" / "checkpoints" / "epoch_1.pt").is_file()
    pipe = "pipe:cat " + shlex.quote(str(train / shards[0]))
    result = _run(_train(setup, "--data", pipe, "--samples", "16", "--name", "piped"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert (setup["ws"] / "training" / "piped" / "checkpoints" / "epoch_1.pt").is_file()
    unknown = _run(_train(setup, "--data", pipe, "--name", "piped2"))
    assert unknown.returncode == 2 and "--samples N" in unknown.stderr


def test_gpus_builds_the_exact_torchrun_command(setup, capsys) -> None:
    ws = setup["ws"]
    args = ["train", "--workspace", str(ws), "--subset", "demo/train", "--name", "multi", "--gpus", "4"]
    assert main([*args, "--recipe", str(setup["recipe"]), "--print-command"]) == 0
    command = shlex.split(capsys.readouterr().out.strip())
    folder = ws.resolve() / "training" / "multi"
    train = ws.resolve() / "subsets" / "demo" / "train"
    shards = "::".join(str(p) for p in sorted(train.glob("*.tar")))
    samples = sum(json.loads((train / "sizes.json").read_text()).values())
    assert command == [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1", "--nproc_per_node", "4",
        "-m", "workbench.train.entry", "--model-config", str(folder / "micro-clip.json"), "--",
        "--train-data", shards, "--train-num-samples", str(samples), "--dataset-type", "webdataset",
        "--logs", str(ws.resolve() / "training"), "--name", "multi", "--model", "micro-clip", "--epochs", "1",
        "--batch-size", "8", "--lr", "0.001", "--wd", "0.1", "--warmup", "2", "--precision", "fp32",
        "--workers", "0", "--seed", "0", "--device", "cuda", "--log-every-n-steps", "1", "--save-frequency", "0",
        "--save-most-recent", "--resume", "latest", "--report-to", "", "--zeroshot-frequency", "0",
    ]  # fmt: skip
    assert not folder.exists(), "printing the command writes nothing"


def test_bad_input(setup, capsys) -> None:
    ws, recipe = str(setup["ws"]), str(setup["recipe"])
    base = ["train", "--workspace", ws, "--recipe", recipe, "--no-progress"]
    assert main([*base, "--subset", "demo/train", "--name", "b1", "--model", "NoSuchArch-99"]) == 2
    assert "unknown open_clip architecture 'NoSuchArch-99'" in capsys.readouterr().err
    assert main([*base, "--subset", "demo/train", "--name", "b2", "--pretrained", "/nonexistent/ckpt.pt"]) == 2
    assert "checkpoint /nonexistent/ckpt.pt not found" in capsys.readouterr().err
    assert main(["subset", "--workspace", ws, "--name", "none", "--where", "caption_length < 0", "--no-progress"]) == 0
    capsys.readouterr()
    assert main([*base, "--subset", "none", "--name", "b3"]) == 2
    assert "subset none is empty" in capsys.readouterr().err
    assert main([*base, "--subset", "demo/nope", "--name", "b4"]) == 2
    assert "subset demo/nope not found" in capsys.readouterr().err
    assert main([*base, "--subset", "demo/train", "--name", "b5", "--recipe", "no-such-recipe"]) == 2
    assert "unknown recipe 'no-such-recipe'" in capsys.readouterr().err
    assert not (setup["ws"] / "training" / "b1").exists()
