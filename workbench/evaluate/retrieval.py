"""Image<->text retrieval: the rank of the first matching item for every query; R@1/5/10, mean and median rank
(open_clip_train's get_clip_metrics definitions: R@k = share of queries ranked < k; mean rank + 1; floor(median)+1).

An image may have several captions (every one a positive); a caption has exactly one image.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from workbench.evaluate import bootstrap

KS = (1, 5, 10)
DIRECTIONS = ("image_to_text", "text_to_image")


def first_positive_rank(scores: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """(queries,) 0-based rank of the best-scored positive: how many candidates score strictly higher."""
    best = np.where(positive, scores, -np.inf).max(axis=1)
    return (scores > best[:, None]).sum(axis=1)


def ranks(image_features: np.ndarray, text_features: np.ndarray, text_image: np.ndarray) -> dict[str, np.ndarray]:
    """0-based ranks per direction; `text_image[t]` is the index of caption t's image."""
    scores = image_features.astype(np.float32) @ text_features.astype(np.float32).T  # (images, texts)
    positive = np.zeros(scores.shape, bool)
    positive[text_image, np.arange(len(text_image))] = True
    return {
        "image_to_text": first_positive_rank(scores, positive),
        "text_to_image": first_positive_rank(scores.T, positive.T),
    }


def summary(rank: np.ndarray) -> dict[str, float]:
    """Plain metrics of one direction."""
    out = {f"R@{k}": float(np.mean(rank < k)) for k in KS}
    out["mean_rank"] = float(rank.mean() + 1)
    out["median_rank"] = float(np.floor(np.median(rank)) + 1)
    return out


def evaluate(
    image_features: np.ndarray,
    text_features: np.ndarray,
    text_image: np.ndarray,
    resamples: int = bootstrap.DEFAULT_RESAMPLES,
    seed: int = 0,
) -> dict[str, Any]:
    """Metrics with bootstrap CIs (queries resampled) in both directions, and chance levels."""
    found = ranks(image_features, text_features, text_image)
    out: dict[str, Any] = {"n_images": int(len(image_features)), "n_texts": int(len(text_features))}
    for direction, rank in found.items():
        draws = bootstrap.resample_indices(len(rank), resamples, seed)
        plain = summary(rank)
        sampled = rank[draws]
        result: dict[str, Any] = {
            f"R@{k}": bootstrap.metric(plain[f"R@{k}"], bootstrap.mean_of((rank < k).astype(np.float64)), draws)
            for k in KS
        }
        result["mean_rank"] = {"value": plain["mean_rank"], "ci95": bootstrap.interval(sampled.mean(axis=1) + 1)}
        median = np.floor(np.median(sampled, axis=1)) + 1
        result["median_rank"] = {"value": plain["median_rank"], "ci95": bootstrap.interval(median)}
        out[direction] = result
    candidates = {"image_to_text": len(text_features), "text_to_image": len(image_features)}
    out["chance"] = {d: {f"R@{k}": min(k, c) / c for k in KS} for d, c in candidates.items() if c}
    return out
