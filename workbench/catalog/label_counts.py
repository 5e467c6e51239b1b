"""Counts with label conditions at archive scale: per-cluster counts of the other conditions, summed over the
clusters whose label matches, corrected by the images that carry a label of their own.

A label filter selects a figure when its own label matches, else when its cluster's label does. Evaluated row by row
that is an IN list over 24M cluster ids (~250 ms); decomposed, it is one aggregation over the `cluster_id` column
(zone maps still skip what the other conditions exclude) plus a look at the few images with labels of their own,
whose rows a reader keeps in a small temp table. A label event then reaches a count at the cost of that query.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from workbench.catalog.live_labels import LabelClause


@dataclass(frozen=True)
class LabelSelection:
    """What every label condition of a filter selects together."""

    clusters: frozenset[int]  # clusters whose label passes every condition
    overrides: frozenset[str]  # every image with a label of its own
    passing: frozenset[str]  # the images whose own label passes every condition

    @classmethod
    def of(cls, clauses: Sequence[LabelClause]) -> LabelSelection:
        """From the un-narrowed clause of each label condition (each lists every override as in or out)."""
        clusters = frozenset.intersection(*(frozenset(clause.cluster_ids) for clause in clauses))
        overrides = frozenset(clauses[0].keys_in) | frozenset(clauses[0].keys_out)
        passing = frozenset.intersection(*(frozenset(clause.keys_in) for clause in clauses))
        return cls(clusters, overrides, passing)

    def count(self, per_cluster: Mapping[int | None, int], selected_overrides: Mapping[str, int | None]) -> int:
        """`per_cluster`: figures passing the other conditions, by cluster; `selected_overrides`: the override images
        passing them, with their cluster."""
        total = sum(figures for cluster, figures in per_cluster.items() if cluster in self.clusters)
        for key, cluster in selected_overrides.items():
            total += int(key in self.passing) - int(cluster in self.clusters)
        return total
