"""`TrainConfig` (frozen) and the exact argv it becomes for `open_clip_train.main` (or a torchrun command line).

Recipes are YAML files in data_catalog/training/ (or a path); a config is the recipe with the command line's
overrides applied. The argv always resumes (`--resume latest --save-most-recent`), so the same command after a
kill continues from the last checkpoint.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from workbench.errors import InputNotFound, UserError
from workbench.resources import DATA_CATALOG

RECIPES = DATA_CATALOG / "training"
ENTRY_MODULE = "workbench.train.entry"
_PRECISIONS = ("fp32", "amp", "amp_bf16", "bf16", "fp16", "pure_bf16", "pure_fp16")


@dataclass(frozen=True)
class Recipe:
    """Model and hyperparameters of a training recipe (a YAML file)."""

    name: str
    model: str  # an open_clip architecture, or a model-config .json (resolved to an absolute path)
    pretrained: str | None = None
    epochs: int = 1
    batch_size: int = 64
    lr: float = 5e-4
    wd: float = 0.2
    warmup: int = 100
    precision: str = "amp"
    workers: int = 2
    seed: int = 0
    log_every_n_steps: int = 20
    save_frequency: int = 1  # keep epoch_N.pt every N epochs (0: only the last); epoch_latest.pt is always kept
    extra_args: tuple[str, ...] = ()
    description: str = ""
    source: str = ""
    path: str = ""


def list_recipes() -> list[str]:
    return sorted(path.stem for path in RECIPES.glob("*.yaml"))


def load_recipe(name: str) -> Recipe:
    """A recipe by name (data_catalog/training/NAME.yaml) or path; a model-config .json is found beside it."""
    path = Path(name).expanduser()
    if not (name.endswith((".yaml", ".yml")) and path.is_file()):
        path = RECIPES / f"{name}.yaml"
    if not path.is_file():
        raise InputNotFound(f"unknown recipe {name!r} (recipes: {', '.join(list_recipes())}, or a .yaml path)")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise UserError(f"recipe {path}: not valid YAML ({' '.join(str(error).split())[:200]})") from None
    known = {f.name for f in fields(Recipe)} - {"name", "path"}
    if not isinstance(raw, dict) or "model" not in raw:
        raise UserError(f"recipe {path}: expected a mapping with at least `model`")
    unknown = sorted(set(raw) - known)
    if unknown:
        raise UserError(f"recipe {path}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    values = dict(raw)
    values["extra_args"] = tuple(str(arg) for arg in values.get("extra_args") or ())
    if str(values["model"]).endswith(".json"):
        values["model"] = str((path.parent / values["model"]).resolve())
    try:
        return Recipe(name=path.stem, path=str(path.resolve()), **values)
    except TypeError as error:
        raise UserError(f"recipe {path}: {error}") from None


@dataclass(frozen=True)
class TrainConfig:
    """One training run: where (workspace, name), on what (subset or inputs), how (recipe + overrides)."""

    workspace: Path
    name: str
    recipe: Recipe
    subset: str | None = None  # NAME or NAME/SPLIT under WS/subsets
    data: tuple[str, ...] = ()  # shard files, brace patterns, http(s) URLs, pipe: commands
    samples: int | None = None  # samples per epoch when they cannot be counted
    val_subset: str | None = None  # open_clip_train's own retrieval metrics on it, each epoch
    gpus: int = 0  # 0: this process (cpu, or one GPU with device cuda); N >= 1: torchrun --nproc_per_node N
    device: str = "cpu"
    progress: bool = True
    overrides: dict[str, Any] = field(default_factory=dict)  # epochs, batch_size, lr, ... over the recipe

    def __post_init__(self) -> None:
        if bool(self.subset) == bool(self.data):
            raise UserError("give exactly one of --subset NAME[/SPLIT] or --data INPUT (repeatable)")
        if self.gpus < 0:
            raise UserError(f"--gpus must be 0 or more, not {self.gpus}")
        if self.device not in ("cpu", "cuda"):
            raise UserError(f"--device must be cpu or cuda, not {self.device!r}")
        unknown = set(self.overrides) - {f.name for f in fields(Recipe)}
        if unknown:
            raise UserError(f"unknown recipe override(s): {', '.join(sorted(unknown))}")
        resolved = self.resolved
        if resolved.precision not in _PRECISIONS:
            raise UserError(f"precision {resolved.precision!r} is not one of {', '.join(_PRECISIONS)}")
        for key in ("epochs", "batch_size"):
            if int(getattr(resolved, key)) < 1:
                raise UserError(f"{key} must be 1 or more, not {getattr(resolved, key)}")

    @property
    def resolved(self) -> Recipe:
        """The recipe with the overrides applied."""
        given = {key: value for key, value in self.overrides.items() if value is not None}
        return replace(self.recipe, **given)

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["workspace"] = str(self.workspace)
        values["recipe"] = asdict(self.resolved)
        values["recipe"]["extra_args"] = list(self.resolved.extra_args)
        values["data"] = list(self.data)
        return values


def architecture(recipe: Recipe) -> str:
    """The open_clip model name: a model-config file registers under its stem."""
    return Path(recipe.model).stem if recipe.model.endswith(".json") else recipe.model


def open_clip_argv(config: TrainConfig, train_data: str, samples: int, logs: Path, val: tuple[str, int] | None) -> list:
    """The exact arguments `open_clip_train.main` gets (identical in-process and under torchrun)."""
    recipe = config.resolved
    device = "cuda" if config.gpus else config.device
    argv = [
        "--train-data", train_data,
        "--train-num-samples", str(samples),
        "--dataset-type", "webdataset",
        "--logs", str(logs),
        "--name", config.name,
        "--model", architecture(recipe),
        "--epochs", str(recipe.epochs),
        "--batch-size", str(recipe.batch_size),
        "--lr", repr(float(recipe.lr)),
        "--wd", repr(float(recipe.wd)),
        "--warmup", str(recipe.warmup),
        "--precision", recipe.precision,
        "--workers", str(recipe.workers),
        "--seed", str(recipe.seed),
        "--device", device,
        "--log-every-n-steps", str(recipe.log_every_n_steps),
        "--save-frequency", str(recipe.save_frequency),
        "--save-most-recent",
        "--resume", "latest",
        "--report-to", "",
        "--zeroshot-frequency", "0",
    ]  # fmt: skip
    if recipe.pretrained:
        argv += ["--pretrained", recipe.pretrained]
    if val is not None:
        argv += ["--val-data", val[0], "--val-num-samples", str(val[1]), "--val-frequency", "1"]
    return argv + list(recipe.extra_args)


def entry_argv(model_config: str | None, argv: list[str]) -> list[str]:
    """Arguments of `python -m workbench.train.entry`: register the model config, then open_clip_train.main(argv)."""
    return (["--model-config", model_config] if model_config else []) + ["--", *argv]


def torchrun_command(gpus: int, model_config: str | None, argv: list[str]) -> list[str]:
    """The command line `--gpus N` runs: torchrun on this machine, N processes, each open_clip_train.main(argv)."""
    return [
        sys.executable, "-m", "torch.distributed.run",
        "--standalone", "--nnodes", "1", "--nproc_per_node", str(gpus),
        "-m", ENTRY_MODULE, *entry_argv(model_config, argv),
    ]  # fmt: skip


def shell_line(command: list[str]) -> str:
    return shlex.join(command)
