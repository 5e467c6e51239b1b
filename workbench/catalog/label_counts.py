"""Counts with label conditions at archive scale: per-cluster counts of the other conditions, summed over the
clusters whose label matches, corrected by the images that carry a label of their own.

A label filter selects a figure when its own label matches, else when its cluster's label does. Evaluated row by row
that is an IN list over 24M cluster ids (~250 ms); decomposed, it is one aggregation over the `cluster_id` column
(zone maps still skip what the other conditions exclude) plus a look at the few images with labels of their own,
whose rows a reader keeps in a small temp table. A label event then reaches a count at the cost of that query.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

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

    def counts(
        self,
        per_cluster: Iterable[tuple[Any, int | None, int]],
        selected_overrides: Iterable[tuple[str, int | None, Any]],
    ) -> dict[Any, int]:
        """Figures per value of a column. `per_cluster`: (value, cluster, figures passing the other conditions);
        `selected_overrides`: (key, cluster, value) of the override images passing them."""
        totals: dict[Any, int] = {}
        for value, cluster, figures in per_cluster:
            if cluster in self.clusters:
                totals[value] = totals.get(value, 0) + figures
        for key, cluster, value in selected_overrides:
            change = int(key in self.passing) - int(cluster in self.clusters)
            if change:
                totals[value] = totals.get(value, 0) + change
        return {value: figures for value, figures in totals.items() if figures}


class CountParts:
    """The parts of label counts that do not depend on the labels, kept per reader connection (a connection reads one
    committed state of the cache, so they never change; a refresh gives the reader a new connection): the
    per-cluster counts of the other conditions, and which images with labels of their own pass them (looked up once
    per image: a narrow scan of the key column, ~0.5 s at 24M, where whole rows would take ~20 s). A label event
    then reaches a count at the cost of re-summing."""

    def __init__(self, capacity: int = 32) -> None:
        self.capacity = capacity
        self._per_cluster: dict[tuple, list[tuple]] = {}
        self._overrides: dict[tuple, dict[str, tuple | None]] = {}

    def _slot(self, store: dict, key: tuple, empty: Callable[[], Any]) -> Any:
        if key not in store:
            if len(store) >= self.capacity:
                store.pop(next(iter(store)))
            store[key] = empty()
        return store[key]

    def per_cluster(
        self, connection_id: int, statement: str, params: Sequence[Any], run: Callable[[], list[tuple]]
    ) -> list[tuple]:
        """(value, cluster, figures) rows of `statement`, run once per connection and parameters."""
        return self._slot(self._per_cluster, (connection_id, statement, repr(tuple(params))), run)

    def overrides(
        self,
        connection_id: int,
        statement: str,
        params: Sequence[Any],
        keys: frozenset[str],
        look_up: Callable[[list[str]], list[tuple]],
    ) -> list[tuple]:
        """(key, cluster, value) of the `keys` that pass the conditions; `look_up(keys)` runs for unseen keys only."""
        known = self._slot(self._overrides, (connection_id, statement, repr(tuple(params))), dict)
        missing = sorted(keys - known.keys())
        if missing:
            found = {row[0]: row for row in look_up(missing)}
            known.update({key: found.get(key) for key in missing})
        return [known[key] for key in keys if known[key] is not None]
