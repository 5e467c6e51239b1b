"""Reciprocal-rank fusion: score(d) = sum over lists of 1 / (k + rank(d)), ranks from 1."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Fused:
    key: str
    score: float
    ranks: dict[str, int] = field(default_factory=dict)


def rrf(lists: Mapping[str, Sequence[str]], k: int = 60, limit: int | None = None) -> list[Fused]:
    """Fuse ranked key lists (best first); ties broken by the best single rank, then the key."""
    if k < 0:
        raise ValueError(f"RRF k must be 0 or more, got {k}")
    scores: dict[str, float] = {}
    ranks: dict[str, dict[str, int]] = {}
    for name, keys in lists.items():
        for rank, key in enumerate(dict.fromkeys(keys), start=1):
            scores[key] = scores.get(key, 0.0) + 1.0 / (k + rank)
            ranks.setdefault(key, {})[name] = rank
    order = sorted(scores, key=lambda key: (-scores[key], min(ranks[key].values()), key))
    return [Fused(key, scores[key], ranks[key]) for key in order[:limit]]
