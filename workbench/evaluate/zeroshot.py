"""Zero-shot classification: prompt ensembles averaged into class prototypes, then top-k, balanced accuracy,
per-class recall and the confusion matrix (clip_benchmark's and open_clip's definitions)."""

from __future__ import annotations

from typing import Any

import numpy as np

from workbench.evaluate import bootstrap

LOGIT_SCALE = 100.0


def prototypes(prompt_features: list[np.ndarray]) -> np.ndarray:
    """(classes, dim): each class's normalised prompt embeddings averaged, then normalised again."""
    rows = []
    for features in prompt_features:
        features = features / np.linalg.norm(features, axis=1, keepdims=True)
        mean = features.mean(axis=0)
        rows.append(mean / np.linalg.norm(mean))
    return np.stack(rows).astype(np.float32)


def logits(image_features: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """(images, classes) scores: 100 x cosine similarity (images and prototypes are unit vectors)."""
    return LOGIT_SCALE * image_features.astype(np.float32) @ classes.T


def topk_correct(scores: np.ndarray, targets: np.ndarray, k: int) -> np.ndarray:
    """(n,) bool: the target is among the k highest scores (ties broken as torch.topk would not matter for k=C)."""
    k = min(k, scores.shape[1])
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return (top == targets[:, None]).any(axis=1)


def balanced_accuracy(targets: np.ndarray, predictions: np.ndarray, n_classes: int, indices: np.ndarray) -> np.ndarray:
    """Mean recall over the classes present in each resample (rows of `indices`), like sklearn's."""
    rows, n = indices.shape
    offsets = (np.arange(rows) * n_classes)[:, None]
    labels = (targets[indices] + offsets).ravel()
    hits = (predictions[indices] == targets[indices]).ravel().astype(np.float64)
    support = np.bincount(labels, minlength=rows * n_classes).reshape(rows, n_classes)
    correct = np.bincount(labels, weights=hits, minlength=rows * n_classes).reshape(rows, n_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nanmean(np.where(support > 0, correct / support, np.nan), axis=1)


def evaluate(
    image_features: np.ndarray,
    targets: np.ndarray,
    classes: np.ndarray,
    class_names: list[str],
    resamples: int = bootstrap.DEFAULT_RESAMPLES,
    seed: int = 0,
) -> dict[str, Any]:
    """Metrics with bootstrap CIs for images with known targets (class indices)."""
    n_classes = len(class_names)
    scores = logits(image_features, classes)
    predictions = scores.argmax(axis=1)
    top1 = predictions == targets
    top5 = topk_correct(scores, targets, 5)
    draws = bootstrap.resample_indices(len(targets), resamples, seed)
    whole = np.arange(len(targets))[None, :]
    confusion = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(confusion, (targets, predictions), 1)
    support = confusion.sum(axis=1)
    recall = {name: (float(confusion[i, i] / support[i]) if support[i] else None) for i, name in enumerate(class_names)}
    return {
        "n": int(len(targets)),
        "classes": class_names,
        "top1": bootstrap.metric(top1.mean(), bootstrap.mean_of(top1.astype(np.float64)), draws),
        "top5": bootstrap.metric(top5.mean(), bootstrap.mean_of(top5.astype(np.float64)), draws),
        "balanced_accuracy": bootstrap.metric(
            balanced_accuracy(targets, predictions, n_classes, whole)[0],
            lambda idx: balanced_accuracy(targets, predictions, n_classes, idx),
            draws,
        ),
        "per_class_recall": recall,
        "support": {name: int(support[i]) for i, name in enumerate(class_names)},
        "confusion_matrix": confusion.tolist(),
        "chance": {"top1": 1.0 / n_classes, "top5": min(5, n_classes) / n_classes, "balanced_accuracy": 1 / n_classes},
    }
