"""Agreement between annotators: Cohen's kappa (two), Fleiss' kappa (two or more), and the disagreement queue.

Ratings are each annotator's standing label of a cluster (latest decision, undos applied; skips and
adjudications are not ratings). Overall agreement compares the *first* global concept of each cluster that at
least two annotators labelled (a categorical rating); per global concept it compares presence/absence of that
concept. Cohen's kappa needs exactly two raters per item: with two annotators it is theirs, with more it is the
mean over annotator pairs (each pair on the clusters both labelled; `pairs` lists them). Fleiss' kappa uses every
cluster with two or more ratings (the usual formula, with the number of raters allowed to vary per cluster).
A kappa is None when it is undefined (no items, or one category only).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

from workbench.annotate.derive import CurrentLabels, Label


def cohen_kappa(pairs: Sequence[tuple[Hashable, Hashable]]) -> float | None:
    """Cohen's kappa of two raters' categories over the same items."""
    n = len(pairs)
    if not n:
        return None
    observed = sum(a == b for a, b in pairs) / n
    first, second = Counter(a for a, _ in pairs), Counter(b for _, b in pairs)
    expected = sum(first[c] * second[c] for c in first) / (n * n)
    if expected >= 1.0:
        return None
    return (observed - expected) / (1.0 - expected)


def fleiss_kappa(items: Sequence[Sequence[Hashable]]) -> float | None:
    """Fleiss' kappa over items, each the categories its raters gave (at least two raters per item)."""
    rated = [list(ratings) for ratings in items if len(ratings) >= 2]
    if not rated:
        return None
    agreement = []
    totals: Counter = Counter()
    for ratings in rated:
        counts = Counter(ratings)
        n = len(ratings)
        agreement.append((sum(c * c for c in counts.values()) - n) / (n * (n - 1)))
        totals.update(counts)
    all_ratings = sum(totals.values())
    expected = sum((count / all_ratings) ** 2 for count in totals.values())
    if expected >= 1.0:
        return None
    observed = sum(agreement) / len(agreement)
    return (observed - expected) / (1.0 - expected)


@dataclass(frozen=True)
class AgreementReport:
    """Kappas overall and per global concept, the annotators, and the disagreement queue."""

    clustering: str
    annotators: tuple[str, ...]
    items: int  # clusters labelled by two or more annotators
    cohen_kappa: float | None
    fleiss_kappa: float | None
    pairs: Mapping[str, Mapping[str, Any]]
    per_concept: Mapping[str, Mapping[str, float | None]]
    contested: tuple[Mapping[str, Any], ...]
    adjudicated: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "clustering": self.clustering,
            "annotators": list(self.annotators),
            "items": self.items,
            "cohen_kappa": self.cohen_kappa,
            "fleiss_kappa": self.fleiss_kappa,
            "pairs": {name: dict(values) for name, values in self.pairs.items()},
            "per_concept": {name: dict(values) for name, values in self.per_concept.items()},
            "contested": len(self.contested),
            "adjudicated": self.adjudicated,
            "disagreements": [dict(item) for item in self.contested],
        }

    def describe(self) -> str:
        def shown(value: float | None) -> str:
            return "n/a" if value is None else f"{value:.3f}"

        lines = [
            f"clustering {self.clustering}: {len(self.annotators)} annotator(s), {self.items} cluster(s) labelled "
            f"by two or more; Cohen's kappa {shown(self.cohen_kappa)}, Fleiss' kappa {shown(self.fleiss_kappa)}",
            f"contested (waiting for adjudication): {len(self.contested)}; adjudicated: {self.adjudicated}",
        ]
        for concept, values in self.per_concept.items():
            lines.append(f"  {concept}: Cohen {shown(values['cohen_kappa'])}, Fleiss {shown(values['fleiss_kappa'])}")
        return "\n".join(lines)


def agreement(labels: CurrentLabels) -> AgreementReport:
    """Agreement of the annotators of `labels.clustering` (cluster decisions only) and its disagreement queue."""
    ratings: dict[str, dict[str, Label]] = {
        state.target: dict(state.by_annotator)
        for (kind, _), state in sorted(labels.states.items(), key=lambda item: _order(item[0][1]))
        if kind == "cluster"
    }
    annotators = tuple(sorted({name for per in ratings.values() for name in per}))
    multi = {target: per for target, per in ratings.items() if len(per) >= 2}
    concepts = sorted({c for per in multi.values() for label in per.values() for c in label.global_concepts})

    def first(label: Label) -> str:
        return label.global_concepts[0] if label.global_concepts else ""

    pairs: dict[str, dict[str, Any]] = {}
    for a, b in combinations(annotators, 2):
        both = [(per[a], per[b]) for per in multi.values() if a in per and b in per]
        pairs[f"{a}|{b}"] = {"items": len(both), "cohen_kappa": cohen_kappa([(first(x), first(y)) for x, y in both])}
    per_concept = {}
    for concept in concepts:
        present = [[concept in label.global_concepts for label in per.values()] for per in multi.values()]
        pair_kappas = [
            cohen_kappa(
                [
                    (concept in per[a].global_concepts, concept in per[b].global_concepts)
                    for per in multi.values()
                    if a in per and b in per
                ]
            )
            for a, b in combinations(annotators, 2)
        ]
        per_concept[concept] = {"cohen_kappa": _mean(pair_kappas), "fleiss_kappa": fleiss_kappa(present)}
    overall_cohen = _mean([values["cohen_kappa"] for values in pairs.values() if values["items"]])
    overall_fleiss = fleiss_kappa([[first(label) for label in per.values()] for per in multi.values()])
    contested = tuple(
        {
            "target": state.target,
            "annotators": {
                name: {
                    "global": list(label.global_concepts),
                    "local": list(label.local_concepts),
                    "panel_type": label.panel_type,
                    "panel_subtype": label.panel_subtype,
                }
                for name, label in sorted(state.by_annotator.items())
            },
        }
        for state in sorted(labels.contested, key=lambda state: _order(state.target))
        if state.target_kind == "cluster"
    )
    adjudicated = sum(1 for state in labels.states.values() if state.status == "adjudicated")
    return AgreementReport(
        labels.clustering,
        annotators,
        len(multi),
        overall_cohen,
        overall_fleiss,
        pairs,
        per_concept,
        contested,
        adjudicated,
    )


def _mean(values: Sequence[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return sum(known) / len(known) if known else None


def _order(target: str) -> tuple[int, str]:
    return (int(target), "") if target.isdigit() else (1 << 62, target)
