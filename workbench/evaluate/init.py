"""`init:RUN`: the untrained starting point of training run RUN, to evaluate beside the trained `run:RUN`.

A run continued from a checkpoint (`pretrained` in its params.json) starts from that checkpoint. A run from random
initialisation starts from open_clip's initialisation under the run's seed (seeded as open_clip_train seeds it before
creating the model); that model is saved once as WS/evaluations/init/RUN-seedS.pt and evaluated from there.
"""

from __future__ import annotations

import random
from pathlib import Path

from workbench.errors import UserError
from workbench.extras import require
from workbench.fileio import atomic_path

INIT_PREFIX = "init:"
INIT_DIR = "init"


def initial_spec(workspace: Path | None, run: str) -> str:
    """The `open_clip:` spec of run RUN's starting point (writing its random initialisation once)."""
    from workbench.evaluate.run import RESULTS_DIR
    from workbench.train.runs import run_model

    if workspace is None:
        raise UserError(f"model spec 'init:{run}' needs --workspace (the run lives in WS/training/{run})")
    model = run_model(workspace, run)
    name = str(model.model_config) if model.model_config else model.architecture
    pretrained = model.params["model"].get("pretrained")
    if pretrained:
        return f"open_clip:{name}:{pretrained}"
    seed = int(model.params.get("seed", 0))
    path = Path(workspace) / RESULTS_DIR / INIT_DIR / f"{run}-seed{seed}.pt"
    if not path.is_file():
        _save_random_init(name, seed, path)
    return f"open_clip:{name}:{path}"


def _save_random_init(name: str, seed: int, path: Path) -> None:
    import numpy as np

    open_clip = require("open_clip", "embed", "open_clip models")
    torch = require("torch", "embed", "open_clip models")
    if name.endswith(".json"):
        open_clip.add_model_config(name)
        name = Path(name).stem
    torch.manual_seed(seed)  # open_clip_train's random_seed(seed, rank 0) before it creates the model
    np.random.seed(seed)
    random.seed(seed)
    model = open_clip.create_model(name)
    with atomic_path(path) as temporary:
        torch.save({"state_dict": model.state_dict()}, temporary)
