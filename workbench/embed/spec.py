"""Model specs (`builtin`, `open_clip:ARCH[:PRETRAINED]`, `timm:NAME[:WEIGHTS_FILE]`, `run:RUN`): parsed offline.

`run:RUN` is a training run's latest checkpoint (WS/training/RUN, `workbench.train.runs`); it needs the workspace
and resolves to the equivalent `open_clip:CONFIG_OR_ARCH:CHECKPOINT` spec (its `text`), with `run` set.

Parsing checks everything that needs no model load, so bad input fails before anything is written: an unknown
family or architecture, a weights file that is missing, an `hf-hub:` id or a pretrained tag that is not in the
local cache (nothing is ever downloaded: the hub is used offline).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import InputNotFound, UserError
from workbench.extras import require

HF_HUB = "hf-hub:"
WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".npz", ".ckpt")
OPEN_CLIP_WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
TIMM_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
FORMS = "builtin, open_clip:ARCH[:PRETRAINED], timm:NAME[:WEIGHTS_FILE] or run:RUN"
RUN_PREFIX = "run:"


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec. `weights_kind`: none | file | hf-hub | tag; `weights_path`: the resolved local file."""

    family: str  # builtin | open_clip | timm
    name: str  # the open_clip architecture (or a model-config .json), the timm model name, or "descriptors-v1"
    weights: str | None = None  # as given: a file path, an hf-hub: id or a tag
    weights_kind: str = "none"
    weights_path: str | None = None
    config_path: str | None = None  # the hub snapshot folder (open_clip hf-hub) or a model-config .json
    run: str | None = None  # the training run of a `run:RUN` spec

    @property
    def text(self) -> str:
        """The spec as the user wrote it (canonical: file paths made absolute)."""
        if self.family == "builtin":
            return "builtin"
        weights = self.weights_path if self.weights_kind == "file" else self.weights
        name = self.config_path if self.config_path and self.config_path.endswith(".json") else self.name
        return f"{self.family}:{name}" + (f":{weights}" if weights else "")

    @property
    def contrastive(self) -> bool:
        return self.family == "open_clip"


def hf_cache_dir() -> str:
    """The Hugging Face hub cache folder, read from the environment now (so a test may point it elsewhere)."""
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return explicit
    home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    return os.path.join(home, "hub")


def cached_hub_file(repo_id: str, filenames: tuple[str, ...]) -> str | None:
    """The first of `filenames` present in the local hub cache for `repo_id`, or None (no network access)."""
    from huggingface_hub import try_to_load_from_cache

    for filename in filenames:
        found = try_to_load_from_cache(repo_id, filename, cache_dir=hf_cache_dir())
        if isinstance(found, str) and os.path.isfile(found):
            return found
    return None


def parse_model_spec(text: str, workspace: str | Path | None = None) -> ModelSpec:
    """Parse and check a spec; raise UserError (one line) when it cannot be used offline.

    `workspace` is needed only by `run:RUN` (the run's folder is WS/training/RUN).
    """
    text = (text or "").strip()
    if text == "builtin":
        return ModelSpec("builtin", "descriptors-v1")
    if text.startswith(RUN_PREFIX):
        return run_spec(text[len(RUN_PREFIX) :], workspace)
    family, _, rest = text.partition(":")
    if family == "open_clip" and rest:
        return _open_clip(rest)
    if family == "timm" and rest:
        return _timm(rest)
    raise UserError(f"unknown model spec {text!r}: expected {FORMS}")


def _split(rest: str) -> tuple[str, str | None]:
    if rest.startswith(HF_HUB):
        return rest, None
    name, _, weights = rest.partition(":")
    return name, weights or None


def _weights_file(weights: str, spec_text: str) -> str:
    path = Path(weights).expanduser()
    if not path.is_file():
        raise InputNotFound(f"weights file {weights} of model spec {spec_text!r} not found")
    return str(path.resolve())


def _looks_like_path(weights: str) -> bool:
    return os.sep in weights or weights.endswith(WEIGHT_SUFFIXES) or weights.startswith(("~", "."))


def _open_clip(rest: str) -> ModelSpec:
    open_clip = require("open_clip", "embed", "open_clip models")
    spec_text = f"open_clip:{rest}"
    name, weights = _split(rest)
    if name.startswith(HF_HUB):  # open_clip:hf-hub:org/repo: the architecture comes from the hub config
        name, weights = "", name
    config_path = None
    if name.endswith(".json"):  # a model-config file of one's own, registered with open_clip
        config = Path(name).expanduser()
        if not config.is_file():
            raise InputNotFound(f"model config {name} of model spec {spec_text!r} not found")
        config_path = str(config.resolve())
        open_clip.add_model_config(config_path)
        name = config.stem
    elif name and name not in open_clip.list_models():
        raise UserError(f"unknown open_clip architecture {name!r} in model spec {spec_text!r}")
    if weights is None:  # random weights are no embedding: refuse rather than write noise
        raise UserError(
            f"model spec {spec_text!r} names no weights: use open_clip:ARCH:PRETRAINED (file, hf-hub:, tag)"
        )
    if weights.startswith(HF_HUB):
        repo = weights[len(HF_HUB) :]
        config = cached_hub_file(repo, ("open_clip_config.json",))
        checkpoint = cached_hub_file(repo, OPEN_CLIP_WEIGHT_FILES)
        if not repo or config is None or checkpoint is None:
            raise InputNotFound(
                f"{weights} is not in the local Hugging Face cache ({hf_cache_dir()}); the hub is used offline: "
                "download it there first"
            )
        return ModelSpec("open_clip", name, weights, "hf-hub", checkpoint, str(Path(config).parent))
    if _looks_like_path(weights):
        return ModelSpec("open_clip", name, weights, "file", _weights_file(weights, spec_text), config_path)
    return ModelSpec("open_clip", name, weights, "tag", _open_clip_tag(open_clip, name, weights, spec_text))


def _open_clip_tag(open_clip, name: str, tag: str, spec_text: str) -> str:  # noqa: ANN001
    cfg = open_clip.get_pretrained_cfg(name, tag)
    if not cfg:
        known = ", ".join(open_clip.list_pretrained_tags_by_model(name)) or "none"
        raise UserError(f"unknown pretrained tag {tag!r} for {name} in model spec {spec_text!r} (known: {known})")
    hub = cfg.get("hf_hub", "")
    found = None
    if hub:
        repo, filename = os.path.split(hub.rstrip("/")) if not hub.endswith("/") else (hub.rstrip("/"), "")
        found = cached_hub_file(repo, (filename,) if filename else OPEN_CLIP_WEIGHT_FILES)
    elif cfg.get("url"):
        candidate = Path("~/.cache/clip").expanduser() / os.path.basename(cfg["url"])
        found = str(candidate) if candidate.is_file() else None
    if found is None:
        raise InputNotFound(f"weights of open_clip tag {name}:{tag} are not cached locally (the hub is used offline)")
    return found


def _timm(rest: str) -> ModelSpec:
    timm = require("timm", "embed", "timm models")
    spec_text = f"timm:{rest}"
    name, weights = rest.partition(":")[0], rest.partition(":")[2] or None
    if not timm.is_model(name):
        raise UserError(f"unknown timm model {name!r} in model spec {spec_text!r}")
    if weights is not None:
        return ModelSpec("timm", name, weights, "file", _weights_file(weights, spec_text))
    cfg = timm.models.get_pretrained_cfg(name)
    repo = getattr(cfg, "hf_hub_id", None) if cfg else None
    found = cached_hub_file(repo, TIMM_WEIGHT_FILES) if repo else None
    if found is None:
        raise InputNotFound(
            f"no weights for timm model {name!r}: give timm:{name}:WEIGHTS_FILE or put hf-hub:{repo} into the "
            f"local Hugging Face cache ({hf_cache_dir()})"
        )
    return ModelSpec("timm", name, f"{HF_HUB}{repo}", "hf-hub", found)


def run_spec(run: str, workspace: str | Path | None) -> ModelSpec:
    """The open_clip spec of training run RUN's latest checkpoint, marked with the run's name."""
    from workbench.train.runs import run_model

    if workspace is None:
        raise UserError(f"model spec 'run:{run}' needs a workspace (the run lives in WS/training/{run})")
    if not run:
        raise UserError("model spec 'run:' names no run: use run:RUN")
    model = run_model(workspace, run)
    name = str(model.model_config) if model.model_config else model.architecture
    spec = _open_clip(f"{name}:{model.checkpoint}")
    return ModelSpec(
        spec.family, spec.name, spec.weights, spec.weights_kind, spec.weights_path, spec.config_path, run=run
    )
