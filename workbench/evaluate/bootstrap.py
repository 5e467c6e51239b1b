"""Percentile bootstrap 95% confidence intervals over evaluation items (seeded: the same seed, the same CI)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

DEFAULT_RESAMPLES = 1000
LEVEL = 0.95


def resample_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n) indices drawn with replacement."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def interval(values: np.ndarray) -> list[float]:
    """The central 95% of bootstrap statistics, as [low, high]."""
    finite = values[np.isfinite(values)]
    if not len(finite):
        return [float("nan"), float("nan")]
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return [float(low), float(high)]


def metric(value: float, statistic: Callable[[np.ndarray], np.ndarray], indices: np.ndarray) -> dict[str, object]:
    """{"value": the statistic on all items, "ci95": [low, high] over the resamples}."""
    return {"value": float(value), "ci95": interval(statistic(indices))}


def mean_of(values: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """The statistic `mean of values` on each resample."""
    return lambda indices: values[indices].mean(axis=1)
