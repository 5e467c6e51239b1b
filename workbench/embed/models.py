"""Load the model a `ModelSpec` names: its image transform (run on DataLoader workers), tokenizer and encoders."""

from __future__ import annotations

import importlib.metadata
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workbench.embed import builtin
from workbench.embed.spec import ModelSpec
from workbench.errors import UserError
from workbench.extras import require
from workbench.fileio import file_sha256


@dataclass(frozen=True)
class Embedder:
    """A loaded model. `transform` and `tokenize` are picklable and run on DataLoader workers."""

    spec: ModelSpec
    transform: Callable[[Any], Any]  # PIL image -> tensor (for builtin: the finished descriptor)
    encode_images: Callable[[Any], np.ndarray]  # stacked batch -> (n, dim) float32
    tokenize: Callable[[list[str]], Any] | None = None
    encode_texts: Callable[[Any], np.ndarray] | None = None
    dims: dict[str, int] = field(default_factory=dict)
    normalised: bool = False
    preprocessing: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"

    @property
    def decode_size(self) -> int:
        """JPEGs are decoded at the smallest DCT scale that keeps both sides at least this large."""
        size = self.preprocessing.get("size") or self.preprocessing.get("input_size", [0, 224, 224])[1:]
        side = max(size) if isinstance(size, list | tuple) else size
        return int(-(-side // float(self.preprocessing.get("crop_pct") or 1.0)))  # timm resizes to side / crop_pct

    @property
    def towers(self) -> tuple[str, ...]:
        return ("image", "text") if self.encode_texts is not None else ("image",)

    def card(self) -> dict[str, Any]:
        """The model half of the card: spec, checkpoint, preprocessing, dims, normalisation, versions."""
        path = self.spec.weights_path
        return {
            "spec": self.spec.text,
            "family": self.spec.family,
            "model": self.spec.name,
            "weights": self.spec.weights,
            "checkpoint": path,
            "checkpoint_sha256": file_sha256(path) if path else None,
            "preprocessing": self.preprocessing | {"jpeg_draft_min_side": self.decode_size},
            "dims": dict(self.dims),
            "towers": list(self.towers),
            "normalised": self.normalised,
            "versions": versions(),
        }


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in ("biomedica-workbench", "torch", "torchvision", "open_clip_torch", "timm", "numpy", "pillow"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def load_embedder(spec: ModelSpec, device: str = "cpu") -> Embedder:
    """Load the model on `device`; a checkpoint that does not fit its architecture is a UserError."""
    if spec.family == "builtin":
        return _builtin()
    torch = require("torch", "embed", "embedding with a model")
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available here")
    try:
        embedder = _open_clip(spec, device) if spec.family == "open_clip" else _timm(spec, device)
    except (RuntimeError, KeyError, ValueError, OSError) as error:
        if isinstance(error, UserError):
            raise
        raise UserError(f"cannot load {spec.text}: {' '.join(str(error).split())[:300]}") from error
    return embedder


def _describe_tensor(image: Any) -> Any:
    import torch

    return torch.from_numpy(builtin.describe(image))


def _builtin() -> Embedder:
    return Embedder(
        spec=ModelSpec("builtin", builtin.NAME),
        transform=_describe_tensor,
        encode_images=lambda batch: np.asarray(batch, dtype=np.float32),
        dims={"image": builtin.DIM},
        normalised=True,
        preprocessing=builtin.PREPROCESSING,
    )


def _runner(model: Any, method: str, device: str, normalise: bool) -> Callable[[Any], np.ndarray]:
    import torch

    encode = getattr(model, method) if method else model

    def run(batch: Any) -> np.ndarray:
        with torch.inference_mode(), torch.autocast("cuda", enabled=device == "cuda"):
            out = encode(batch.to(device, non_blocking=True)).float()
            if normalise:
                out = torch.nn.functional.normalize(out, dim=-1)
        return out.cpu().numpy()

    return run


def _open_clip(spec: ModelSpec, device: str) -> Embedder:
    open_clip = require("open_clip", "embed", "open_clip models")
    if spec.config_path and spec.config_path.endswith(".json"):
        open_clip.add_model_config(spec.config_path)
    options: dict[str, Any] = {}
    if spec.weights_kind == "hf-hub":
        name, pretrained = f"local-dir:{spec.config_path}", None
    elif spec.weights_kind == "tag":
        cfg = open_clip.get_pretrained_cfg(spec.name, spec.weights)
        name, pretrained = spec.name, spec.weights_path
        options = {"image_mean": cfg.get("mean"), "image_std": cfg.get("std")}
        options["force_quick_gelu"] = bool(cfg.get("quick_gelu", False))
    else:
        name, pretrained = spec.name, spec.weights_path
    model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=pretrained, device=device, **options)
    model.eval()
    tokenizer = open_clip.get_tokenizer(name)
    cfg = open_clip.get_model_preprocess_cfg(model)
    size = cfg.get("size")
    embedder = Embedder(
        spec=spec,
        transform=preprocess,
        encode_images=_runner(model, "encode_image", device, True),
        tokenize=tokenizer,
        encode_texts=_runner(model, "encode_text", device, True),
        normalised=True,
        preprocessing={key: list(v) if isinstance(v, tuple) else v for key, v in cfg.items()} | {"size": size},
        device=device,
    )
    return _with_dims(embedder, size)


def _timm(spec: ModelSpec, device: str) -> Embedder:
    timm = require("timm", "embed", "timm models")
    model = timm.create_model(spec.name, pretrained=False)
    state = timm.models.load_state_dict(spec.weights_path)
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as error:  # shapes differ
        detail = " ".join(str(error).split())[:200]
        raise UserError(f"weights {spec.weights_path} do not fit timm model {spec.name}: {detail}") from error
    head = str(model.pretrained_cfg.get("classifier", "head"))
    missing = [key for key in result.missing_keys if not key.startswith(head)]
    if missing or result.unexpected_keys:
        shown = (missing + list(result.unexpected_keys))[:4]
        raise UserError(f"weights {spec.weights_path} do not fit timm model {spec.name}: keys {shown} differ")
    model.reset_classifier(0)  # features = the pooled output, before any classifier
    model.eval().to(device)
    config = timm.data.resolve_data_config({}, model=model)
    transform = timm.data.create_transform(**config, is_training=False)
    embedder = Embedder(
        spec=spec,
        transform=transform,
        encode_images=_runner(model, "", device, False),
        normalised=False,
        preprocessing={key: list(v) if isinstance(v, tuple) else v for key, v in config.items()},
        device=device,
    )
    return _with_dims(embedder, config["input_size"][1:])


def _with_dims(embedder: Embedder, size: Any) -> Embedder:
    """Fill in each tower's dimension from one tiny forward pass."""
    import torch

    height, width = (size, size) if isinstance(size, int) else tuple(size)
    dims = {"image": int(embedder.encode_images(torch.zeros(1, 3, height, width)).shape[1])}
    if embedder.tokenize is not None and embedder.encode_texts is not None:
        dims["text"] = int(embedder.encode_texts(embedder.tokenize([""])).shape[1])
    object.__setattr__(embedder, "dims", dims)
    return embedder
