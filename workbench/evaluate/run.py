"""One evaluation: a model on a task -> a results dict (metrics with CIs, model card, task version, seed), saved as
WS/evaluations/TASK/MODEL.json when a workspace is given."""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from workbench.errors import UserError
from workbench.evaluate import bootstrap, retrieval, zeroshot
from workbench.evaluate.encode import MAX_FAILURE_EXAMPLES, encode_images, encode_texts, load_model
from workbench.evaluate.init import INIT_PREFIX
from workbench.evaluate.sources import TaskData, load_data
from workbench.evaluate.tasks import Task, load_task
from workbench.fileio import write_json_atomically

RESULTS_DIR = "evaluations"


@dataclass(frozen=True)
class EvalConfig:
    """What `workbench evaluate` runs. `seed`/`resamples` None: the task file's, else 0 / 1000."""

    model: str
    task: str
    workspace: Path | None = None
    subset: str | None = None
    labels: Path | None = None  # a workspace-split task's ground truth, instead of the task file's
    device: str = "cpu"
    batch_size: int = 64
    num_workers: int = 0
    seed: int | None = None
    resamples: int | None = None
    progress: bool = True
    save: bool = True


def model_slug(spec_text: str, run: str | None, init: bool = False) -> str:
    """A file name for a model's results: the run name, or the spec's readable part plus a short hash."""
    if run:
        return f"{'init' if init else 'run'}-{run}"
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(spec_text.split(":")[1] if ":" in spec_text else spec_text).stem)
    return f"{readable[:60]}-{hashlib.sha1(spec_text.encode()).hexdigest()[:8]}"


def results_path(workspace: Path, task: str, slug: str) -> Path:
    return workspace / RESULTS_DIR / task / f"{slug}.json"


def _targets(task: Task, data: TaskData, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the decoded items whose label is one of the task's classes, and their class indices."""
    index = {c.label: i for i, c in enumerate(task.classes)}
    keep = [i for i, label in enumerate(data.labels) if ok[i] and label in index]
    return np.asarray(keep, np.int64), np.asarray([index[data.labels[i]] for i in keep], np.int64)


def _zeroshot(task: Task, data: TaskData, embedder: Any, images: Any, resamples: int, seed: int) -> dict[str, Any]:
    items, targets = _targets(task, data, images.ok)
    if not len(items):
        raise UserError(f"task {task.name}: no decoded image carries one of the task's class labels")
    prompt_features = [encode_texts(embedder, list(c.prompts)) for c in task.classes]
    result = zeroshot.evaluate(
        images.features[items], targets, zeroshot.prototypes(prompt_features), task.class_names, resamples, seed
    )
    result["unlabelled"] = int(images.ok.sum() - len(items))
    return result


def _retrieval(task: Task, data: TaskData, embedder: Any, images: Any, resamples: int, seed: int) -> dict[str, Any]:
    items = [i for i in range(len(data)) if images.ok[i] and data.captions[i]]
    if len(items) < 2:
        raise UserError(f"task {task.name}: retrieval needs at least two decoded images with captions")
    texts = [caption for i in items for caption in data.captions[i]]
    owner = np.asarray([position for position, i in enumerate(items) for _ in data.captions[i]], np.int64)
    text_features = encode_texts(embedder, texts)
    return retrieval.evaluate(images.features[items], text_features, owner, resamples, seed)


def _init_run(model: str) -> str | None:
    text = model.strip()
    return text[len(INIT_PREFIX) :] if text.startswith(INIT_PREFIX) else None


def evaluate(config: EvalConfig) -> dict[str, Any]:
    """Run every metric of the task on the model; save the results (with a workspace) and return them."""
    task = load_task(config.task)
    seed = int(config.seed if config.seed is not None else task.options.get("seed", 0))
    resamples = int(config.resamples or task.options.get("bootstrap", bootstrap.DEFAULT_RESAMPLES))
    data = load_data(task, config.workspace, config.subset, config.labels)
    embedder = load_model(config.model, config.workspace, config.device)
    started = time.perf_counter()
    images = encode_images(embedder, data.images, config.batch_size, config.num_workers, config.progress)
    image_seconds = time.perf_counter() - started
    results: dict[str, Any] = {
        "task": task.card(),
        "model": embedder.card() | {"run": embedder.spec.run, "initialisation_of": _init_run(config.model)},
        "seed": seed,
        "bootstrap_resamples": resamples,
        "data": {
            "source": data.source,
            "items": len(data),
            "decoded": int(images.ok.sum()),
            "decode_failures": {
                "count": len(images.failures),
                "examples": [{"id": data.ids[i], "error": why} for i, why in images.failures[:MAX_FAILURE_EXAMPLES]],
            },
        },
    }
    if "zeroshot" in task.metrics:
        results["zeroshot"] = _zeroshot(task, data, embedder, images, resamples, seed)
        results["top1"] = results["zeroshot"]["top1"]
    if "retrieval" in task.metrics:
        results["retrieval"] = _retrieval(task, data, embedder, images, resamples, seed)
    seconds = time.perf_counter() - started
    results["timing"] = {
        "seconds": round(seconds, 3),
        "image_seconds": round(image_seconds, 3),
        "images_per_s": round(len(data) / image_seconds, 2) if image_seconds else None,
    }
    results["created"] = datetime.now(UTC).isoformat(timespec="seconds")
    if config.save and config.workspace is not None:
        run = results["model"]["run"] or results["model"]["initialisation_of"]
        slug = model_slug(embedder.spec.text, run, init=bool(results["model"]["initialisation_of"]))
        path = results_path(config.workspace, task.name, slug)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomically(results, path)
        results["path"] = str(path)
    return results
