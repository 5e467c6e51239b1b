"""`workbench embed`: every model-loading path (builtin, open_clip file, open_clip hf-hub from an offline cache, timm
file) with tiny random checkpoints saved to disk; bad input; resume after kill -9; incremental runs; subsets."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from workbench.cli import main
from workbench.embed.store import EmbeddingSet
from workbench.workspace import Workspace

torch = pytest.importorskip("torch")
open_clip = pytest.importorskip("open_clip")
timm = pytest.importorskip("timm")

TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 4, "layers": 2},
}
SNAPSHOT = "0123456789abcdef0123456789abcdef01234567"


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "workbench.cli", *args]


def _extract(mirror: Path, articles: int, root: Path) -> None:
    assert main(["sample-mirror", str(mirror), "--articles", str(articles), "--seed", "3", "--no-progress"]) == 0
    assert main(["acquire", "--source", str(mirror), "--workspace", str(root), "--no-progress"]) == 0
    assert main(["extract", "--workspace", str(root), "--workers", "0", "--shard-size", "12", "--no-progress"]) == 0


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A 16-article sample mirror, extracted into several small shards."""
    base = tmp_path_factory.mktemp("embed")
    _extract(base / "mirror", 16, base / "ws")
    return base / "ws"


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """Tiny random checkpoints: an open_clip model (config file + state dict), the same as a hub cache, a timm one."""
    folder = tmp_path_factory.mktemp("models")
    config = folder / "tiny-clip-test.json"
    config.write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(config)
    torch.manual_seed(0)
    clip = open_clip.create_model("tiny-clip-test")
    torch.save(clip.state_dict(), folder / "clip.pt")
    snapshot = folder / "hub" / "models--test--tiny-clip" / "snapshots" / SNAPSHOT
    snapshot.mkdir(parents=True)
    (snapshot / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_CLIP, "preprocess_cfg": {}}))
    torch.save(clip.state_dict(), snapshot / "open_clip_pytorch_model.bin")
    (folder / "hub" / "models--test--tiny-clip" / "refs").mkdir()
    (folder / "hub" / "models--test--tiny-clip" / "refs" / "main").write_text(SNAPSHOT)
    torch.save(timm.create_model("resnet10t", pretrained=False).state_dict(), folder / "resnet10t.pth")
    return {"config": config, "clip": folder / "clip.pt", "hub": folder / "hub", "timm": folder / "resnet10t.pth"}


def _catalog_keys(root: Path) -> list[str]:
    import pyarrow.parquet as pq

    return sorted(pq.read_table(root / "catalog" / "figures.parquet", columns=["key"])["key"].to_pylist())


def _embed(root: Path, spec: str, name: str, *extra: str) -> int:
    return main(["embed", "--workspace", str(root), "--model", spec, "--name", name, "--batch-size", "8", *extra])


def test_builtin_embeds_every_figure_once(workspace, capsys):
    assert _embed(workspace, "builtin", "builtin", "--no-progress") == 0
    embeddings = EmbeddingSet.of(Workspace.at(workspace), "builtin")
    keys, vectors = embeddings.load()
    assert sorted(keys) == _catalog_keys(workspace) and len(embeddings.shards()) > 1
    assert vectors.shape == (len(keys), embeddings.card["dims"]["image"])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=2e-3)
    card = embeddings.card
    assert card["normalised"] and card["towers"] == ["image"] and card["counts"]["rows"] == len(keys)
    assert _embed(workspace, "builtin", "builtin", "--no-progress") == 0
    assert "nothing to do" in capsys.readouterr().out


def test_open_clip_checkpoint_file_embeds_both_towers(workspace, models):
    spec = f"open_clip:{models['config']}:{models['clip']}"
    assert _embed(workspace, spec, "clip", "--no-progress") == 0
    embeddings = EmbeddingSet.of(Workspace.at(workspace), "clip")
    keys, images = embeddings.load("image")
    _, texts = embeddings.load("text")
    card = embeddings.card
    assert (
        card["dims"] == {"image": 32, "text": 32}
        and card["normalised"]
        and card["preprocessing"]["size"] in (64, [64, 64])
    )
    assert card["checkpoint_sha256"] and card["spec"] == spec and card["batch_size"] == 8
    assert sorted(keys) == _catalog_keys(workspace) and images.dtype == np.float32 and texts.shape == images.shape
    assert np.allclose(np.linalg.norm(images, axis=1), 1, atol=2e-3)
    # the stored vector of a sample equals the model run by hand on the decoded image
    from PIL import Image

    from workbench.catalog import open_catalog
    from workbench.ustar import MemberLocation, read_member

    model, _, preprocess = open_clip.create_model_and_transforms("tiny-clip-test", pretrained=str(models["clip"]))
    with open_catalog(workspace) as catalog:
        shard, offset, size = catalog.execute(
            "SELECT shard, jpg_offset, jpg_size FROM figures WHERE key = ?", [keys[3]]
        ).fetchone()
    import io

    image = Image.open(io.BytesIO(read_member(workspace / shard, MemberLocation(offset, size))))
    image.draft("RGB", (64, 64))  # the pipeline decodes JPEGs at the smallest DCT scale that keeps the input size
    image = image.convert("RGB")
    with torch.inference_mode():
        expected = model.encode_image(preprocess(image)[None], normalize=True)[0].numpy()
    assert np.allclose(images[3], expected, atol=2e-3)


def test_open_clip_hf_hub_id_from_an_offline_cache(workspace, models, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(models["hub"]))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert _embed(workspace, "open_clip:hf-hub:test/tiny-clip", "hub", "--no-progress", "--num-workers", "0") == 0
    hub = EmbeddingSet.of(Workspace.at(workspace), "hub")
    assert hub.card["checkpoint"].endswith("open_clip_pytorch_model.bin")
    file_set = EmbeddingSet.of(Workspace.at(workspace), "clip")
    if file_set.shards():  # same weights through the file path: the same vectors
        assert np.array_equal(hub.load()[1], file_set.load()[1])


def test_timm_weights_file_gives_pooled_features(workspace, models):
    assert _embed(workspace, f"timm:resnet10t:{models['timm']}", "dino", "--no-progress") == 0
    embeddings = EmbeddingSet.of(Workspace.at(workspace), "dino")
    keys, vectors = embeddings.load()
    card = embeddings.card
    assert card["dims"] == {"image": 512} and not card["normalised"] and card["towers"] == ["image"]
    assert vectors.shape == (len(_catalog_keys(workspace)), 512) and np.isfinite(vectors).all()


def test_timm_default_weights_from_an_offline_cache(workspace, models, tmp_path, monkeypatch):
    from safetensors.torch import save_file

    repo = tmp_path / "hub" / "models--timm--resnet10t.c3_in1k"
    (repo / "snapshots" / SNAPSHOT).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(SNAPSHOT)
    state = torch.load(models["timm"], weights_only=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(repo / "snapshots" / SNAPSHOT / "model.safetensors"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert _embed(workspace, "timm:resnet10t", "timm-hub", "--no-progress", "--num-workers", "0") == 0
    card = EmbeddingSet.of(Workspace.at(workspace), "timm-hub").card
    assert card["weights"] == "hf-hub:timm/resnet10t.c3_in1k" and card["checkpoint"].endswith("model.safetensors")
    if (workspace / "embeddings" / "dino" / "card.json").exists():  # the same weights as a file: the same vectors
        assert _outputs(workspace / "embeddings" / "timm-hub") == _outputs(workspace / "embeddings" / "dino")


@pytest.mark.parametrize(
    "spec",
    [
        "nonsense",
        "open_clip:NoSuchArch:/tmp/x.pt",
        "open_clip:ViT-B-32:/no/such/weights.pt",
        "open_clip:ViT-B-32",
        "open_clip:hf-hub:nobody/absent-model",
        "open_clip:ViT-B-32:no-such-tag",
        "timm:resnet10t:/no/such/weights.pth",
        "timm:no_such_model_at_all",
        "timm:resnet10t",
    ],
)
def test_bad_model_specs_exit_2_and_write_nothing(tmp_path, spec, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    root = tmp_path / "ws"
    root.mkdir()
    assert _embed(root, spec, "x") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "error" in err
    assert sorted(p.name for p in root.iterdir()) == []


def test_checkpoint_of_another_architecture_is_refused(workspace, models, capsys):
    assert _embed(workspace, f"timm:resnet18:{models['timm']}", "wrong") == 2
    assert "do not fit" in capsys.readouterr().err
    assert not (workspace / "embeddings" / "wrong").exists()


def test_another_model_for_a_name_needs_force_and_other_workspaces_are_refused(workspace, models, tmp_path, capsys):
    assert _embed(workspace, "builtin", "swap", "--no-progress") == 0
    spec = f"timm:resnet10t:{models['timm']}"
    assert _embed(workspace, spec, "swap") == 2
    assert "--force" in capsys.readouterr().err
    assert EmbeddingSet.of(Workspace.at(workspace), "swap").card["spec"] == "builtin"
    assert _embed(workspace, spec, "swap", "--force", "--no-progress") == 0
    assert EmbeddingSet.of(Workspace.at(workspace), "swap").card["dims"] == {"image": 512}
    other = tmp_path / "other" / "embeddings" / "builtin"
    assert _embed(workspace, "builtin", str(other)) == 2
    assert "not in this workspace" in capsys.readouterr().err and not other.exists()


def _outputs(folder: Path) -> dict[str, bytes | dict]:
    found: dict[str, bytes | dict] = {}
    for path in sorted(folder.iterdir()):
        if path.name.endswith((".npy", ".keys.txt")):
            found[path.name] = path.read_bytes()
        elif path.name.endswith(".done.json"):
            marker = json.loads(path.read_text())
            found[path.name] = {"rows": marker["rows"], "files": marker["files"]}
    return found


def test_kill_9_then_rerun_equals_an_uninterrupted_run(workspace, models):
    spec = f"open_clip:{models['config']}:{models['clip']}"
    args = ["embed", "--workspace", str(workspace), "--model", spec, "--batch-size", "4", "--no-progress"]
    assert main([*args, "--name", "whole"]) == 0
    folder = workspace / "embeddings" / "killed"
    process = subprocess.Popen(_cli(*args, "--name", "killed"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(folder.glob("*.done.json")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    survived = {p.name: p.stat().st_mtime_ns for p in folder.glob("*.done.json")}
    from workbench.locks import exclusive_lock

    with exclusive_lock(Workspace.at(workspace).locks / "embed-killed.lock", "held", wait_s=0):
        pass  # the lock died with the killed process, though its decoding workers may still linger
    total = len(EmbeddingSet.of(Workspace.at(workspace), "whole").shards())
    assert 0 < len(survived) < total, "the kill did not land mid-run"
    assert main([*args, "--name", "killed"]) == 0
    assert _outputs(folder) == _outputs(workspace / "embeddings" / "whole")
    assert all(folder.joinpath(name).stat().st_mtime_ns == mtime for name, mtime in survived.items())  # not redone


def test_incremental_extract_embeds_only_the_new_shard(tmp_path, capsys):
    root = tmp_path / "ws"
    _extract(tmp_path / "m1", 8, root)
    assert _embed(root, "builtin", "b", "--no-progress", "--num-workers", "0") == 0
    folder = root / "embeddings" / "b"
    before = {p.name: p.stat().st_mtime_ns for p in folder.glob("*.done.json")}
    _extract(tmp_path / "m2", 12, root)  # the same seed: the first 8 articles again plus 4 new ones
    capsys.readouterr()
    assert _embed(root, "builtin", "b", "--no-progress", "--num-workers", "0") == 0
    out = capsys.readouterr().out
    after = {p.name: p.stat().st_mtime_ns for p in folder.glob("*.done.json")}
    assert len(after) > len(before) and all(after[name] == mtime for name, mtime in before.items())
    assert f"{len(before)} shards already embedded" in out
    keys, _ = EmbeddingSet.of(Workspace.at(root), "b").load()
    assert sorted(keys) == _catalog_keys(root)


def test_subset_embeds_only_its_samples(workspace):
    where = "caption_length > 80"
    assert main(["subset", "--workspace", str(workspace), "--name", "long", "--where", where, "--no-progress"]) == 0
    assert _embed(workspace, "builtin", "long", "--subset", "long", "--no-progress", "--num-workers", "0") == 0
    keys, _ = EmbeddingSet.of(Workspace.at(workspace), "long").load()
    subset_keys = sorted((workspace / "subsets" / "long" / "keys.txt").read_text().split())
    assert sorted(keys) == subset_keys and 0 < len(keys) < len(_catalog_keys(workspace))
    assert _embed(workspace, "builtin", "nosuch", "--subset", "missing") == 2


def test_dask_workers_give_the_same_files_as_one_process(workspace, models):
    pytest.importorskip("distributed")
    spec = f"open_clip:{models['config']}:{models['clip']}"
    if not (workspace / "embeddings" / "clip" / "card.json").exists():
        assert _embed(workspace, spec, "clip", "--no-progress") == 0
    assert _embed(workspace, spec, "dask", "--workers", "1", "--no-progress") == 0
    assert _outputs(workspace / "embeddings" / "dask") == _outputs(workspace / "embeddings" / "clip")
    assert EmbeddingSet.of(Workspace.at(workspace), "dask").card["dask"]["workers"] == 1
