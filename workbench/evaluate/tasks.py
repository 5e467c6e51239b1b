"""Evaluation tasks: a YAML file naming the data, the classes with their prompts, and the metrics to run.

A task is a name under `data_catalog/eval/` (NAME.yaml) or a path to a YAML file:

    name: my-task
    version: "1"                  # recorded in every result
    metrics: [zeroshot, retrieval]
    data: {format: folder, path: images/}   # folder | table | webdataset | mubench | workspace-split (sources.py)
    templates: ["a photo of {c}."]           # optional: formatted with each class's name
    classes:
      - {label: ct, name: computed tomography, prompts: ["an axial CT slice."]}

A class's prompt ensemble is its own `prompts` followed by the `templates` formatted with its name; a class left
with no prompt at all is bad input. Paths in `data` are relative to the YAML file's folder; `{workspace}` expands.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from workbench.errors import InputNotFound, UserError
from workbench.fileio import file_sha256
from workbench.resources import DATA_CATALOG

EVAL_DIR = "eval"
METRICS = ("zeroshot", "retrieval")


@dataclass(frozen=True)
class TaskClass:
    """One class: the value the data labels it with, its display name and its prompt ensemble."""

    label: str
    name: str
    prompts: tuple[str, ...]


@dataclass(frozen=True)
class Task:
    """A parsed task file."""

    name: str
    version: str
    path: Path
    sha256: str
    metrics: tuple[str, ...]
    data: dict[str, Any]
    classes: tuple[TaskClass, ...] = ()
    description: str = ""
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def class_names(self) -> list[str]:
        return [c.name for c in self.classes]

    def card(self) -> dict[str, Any]:
        """The task half of a result's provenance."""
        return {
            "name": self.name,
            "version": self.version,
            "path": str(self.path),
            "sha256": self.sha256,
            "metrics": list(self.metrics),
            "data_format": self.data.get("format"),
            "classes": self.class_names,
        }


def shipped_tasks() -> list[str]:
    """The task names under data_catalog/eval/."""
    return sorted(p.stem for p in (DATA_CATALOG / EVAL_DIR).glob("*.yaml"))


def task_path(task: str) -> Path:
    """The YAML file of a task name (data_catalog/eval/NAME.yaml) or path."""
    path = Path(task).expanduser()
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise InputNotFound(f"task file {task} not found")
        return path.resolve()
    shipped = DATA_CATALOG / EVAL_DIR / f"{task}.yaml"
    if not shipped.is_file():
        raise UserError(f"unknown task {task!r}: give a task YAML path or one of {', '.join(shipped_tasks())}")
    return shipped


def load_task(task: str) -> Task:
    """Parse and check a task (name or path); raise UserError naming the file and the problem."""
    path = task_path(task)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise UserError(f"task file {path}: not valid YAML ({' '.join(str(error).split())[:200]})") from None
    if not isinstance(raw, dict):
        raise UserError(f"task file {path}: expected a mapping with name, data and classes")
    metrics = tuple(raw.get("metrics") or METRICS)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise UserError(f"task file {path}: unknown metrics {unknown} (choose from {', '.join(METRICS)})")
    data = raw.get("data")
    if not isinstance(data, dict) or not data.get("format"):
        raise UserError(f"task file {path}: 'data' must be a mapping with a 'format'")
    classes = _classes(raw, path) if "zeroshot" in metrics else ()
    return Task(
        name=str(raw.get("name") or path.stem),
        version=str(raw.get("version", "1")),
        path=path,
        sha256=file_sha256(path),
        metrics=metrics,
        data=dict(data),
        classes=classes,
        description=str(raw.get("description") or ""),
        options={key: raw[key] for key in ("seed", "bootstrap") if key in raw},
    )


def _classes(raw: dict[str, Any], path: Path) -> tuple[TaskClass, ...]:
    templates = raw.get("templates") or []
    if not isinstance(templates, list) or not all(isinstance(t, str) and "{c}" in t for t in templates):
        raise UserError(f"task file {path}: 'templates' must be a list of strings containing {{c}}")
    entries = raw.get("classes")
    if not isinstance(entries, list) or not entries:
        raise UserError(f"task file {path}: zero-shot needs a non-empty 'classes' list")
    classes, seen = [], set()
    for position, entry in enumerate(entries):
        entry = {"label": entry} if isinstance(entry, str | int) else entry
        if not isinstance(entry, dict) or entry.get("label") is None:
            raise UserError(f"task file {path}: class #{position + 1} has no 'label'")
        label = str(entry["label"])
        if label in seen:
            raise UserError(f"task file {path}: class {label!r} is listed twice")
        seen.add(label)
        name = str(entry.get("name") or label)
        own = entry.get("prompts") or []
        if not isinstance(own, list) or not all(isinstance(p, str) and p.strip() for p in own):
            raise UserError(f"task file {path}: class {label!r}: 'prompts' must be a list of non-empty strings")
        prompts = tuple(own) + tuple(t.format(c=name) for t in templates)
        if not prompts:
            raise UserError(f"task file {path}: class {label!r} has no prompts (give 'prompts' or 'templates')")
        classes.append(TaskClass(label, name, prompts))
    return tuple(classes)
