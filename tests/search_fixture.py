"""A searchable workspace: a sample mirror extracted into small shards, embedded with a tiny random open_clip model
(image and caption towers) saved to disk, and indexed. Shared by the search, serve and ask tests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from workbench.cli import main

TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 4, "layers": 2},
}


@dataclass(frozen=True)
class SearchWorkspace:
    root: Path
    spec: str
    embeddings: str = "tiny"


def tiny_clip_spec(folder: Path) -> str:
    """Save a randomly initialised tiny open_clip model; return its model spec."""
    import open_clip
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "tiny-clip-search.json"
    config.write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(config)
    torch.manual_seed(0)
    torch.save(open_clip.create_model("tiny-clip-search").state_dict(), folder / "clip.pt")
    return f"open_clip:{config}:{folder / 'clip.pt'}"


def build_search_workspace(folder: Path, articles: int = 16, seed: int = 3, index: bool = True) -> SearchWorkspace:
    mirror, root = folder / "mirror", folder / "ws"
    assert main(["sample-mirror", str(mirror), "--articles", str(articles), "--seed", str(seed), "--no-progress"]) == 0
    assert main(["acquire", "--source", str(mirror), "--workspace", str(root), "--no-progress"]) == 0
    assert main(["extract", "--workspace", str(root), "--workers", "0", "--shard-size", "12", "--no-progress"]) == 0
    made = SearchWorkspace(root, tiny_clip_spec(folder / "model"))
    embed = ["embed", "--workspace", str(root), "--model", made.spec, "--name", made.embeddings]
    assert main([*embed, "--num-workers", "0", "--no-progress"]) == 0
    if index:
        assert main(["index", "--workspace", str(root), "--embeddings", made.embeddings]) == 0
    return made
