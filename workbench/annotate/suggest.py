"""Active-learning suggestions: a label for each unlabelled cluster from its nearest labelled centroids.

For an unlabelled cluster the `neighbours` labelled clusters with the most similar centroids (cosine) vote, each
with weight exp(similarity / temperature); the suggestion is the label of the heaviest voter's first global concept
group, its confidence the share of the vote that agrees on that first global concept. "Most uncertain first" asks
about the lowest confidence first: where a decision teaches the most.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workbench.annotate.values import LabelValue

NEIGHBOURS = 5
TEMPERATURE = 0.1


@dataclass(frozen=True)
class Suggestion:
    label: LabelValue
    confidence: float  # 0..1: the share of the neighbours' vote agreeing on the first global concept
    neighbours: tuple[int, ...]  # the labelled clusters that voted, nearest first


def suggest(
    cluster_ids: np.ndarray,
    centroids: np.ndarray,
    labels: dict[int, LabelValue],
    neighbours: int = NEIGHBOURS,
    temperature: float = TEMPERATURE,
) -> dict[int, Suggestion]:
    """Suggestions for every cluster in `cluster_ids` that has no label in `labels` (unit-norm `centroids` rows)."""
    row_of = {int(cid): i for i, cid in enumerate(cluster_ids)}
    known = [cid for cid, label in labels.items() if cid in row_of and not label.empty]
    if not known:
        return {}
    known_rows = centroids[[row_of[cid] for cid in known]]
    unlabelled = [int(cid) for cid in cluster_ids if int(cid) not in labels]
    if not unlabelled:
        return {}
    similarity = centroids[[row_of[cid] for cid in unlabelled]] @ known_rows.T  # (unlabelled, labelled)
    take = min(neighbours, len(known))
    nearest = np.argsort(-similarity, axis=1, kind="stable")[:, :take]
    out = {}
    for row, cid in enumerate(unlabelled):
        chosen = nearest[row]
        weights = np.exp((similarity[row, chosen] - similarity[row, chosen[0]]) / temperature)
        votes: dict[str, float] = {}
        for index, weight in zip(chosen, weights, strict=True):
            first = labels[known[index]].globals[0]
            votes[first] = votes.get(first, 0.0) + float(weight)
        winner = max(votes, key=lambda name: (votes[name], name))
        best = next(known[i] for i in chosen if labels[known[i]].globals[0] == winner)
        out[cid] = Suggestion(labels[best], votes[winner] / float(weights.sum()), tuple(int(known[i]) for i in chosen))
    return out
