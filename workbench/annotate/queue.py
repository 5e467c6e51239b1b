"""`ClusterQueue`: which cluster the annotator sees next.

Orders: "largest" (the most figures first: each decision labels the most images) or "uncertain" (active learning:
the lowest suggestion confidence first; clusters without any suggestion yet count as confidence 0, larger first).
Labelled and skipped clusters are left out until the queue comes round again; `back` walks the clusters shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ORDERS = ("largest", "uncertain")


@dataclass
class ClusterQueue:
    sizes: dict[int, int]  # cluster id -> figures
    order: str = "largest"
    labelled: set[int] = field(default_factory=set)
    skipped: list[int] = field(default_factory=list)
    confidence: dict[int, float] = field(default_factory=dict)  # suggestion confidence per unlabelled cluster
    history: list[int] = field(default_factory=list)  # clusters shown, in order

    def __post_init__(self) -> None:
        if self.order not in ORDERS:
            raise ValueError(f"queue order {self.order!r} is not one of {', '.join(ORDERS)}")

    def ranked(self) -> list[int]:
        """Unlabelled clusters in queue order (skipped ones last, in the order they were skipped)."""
        skipped = set(self.skipped)
        todo = [cid for cid in self.sizes if cid not in self.labelled and cid not in skipped]
        if self.order == "largest":
            todo.sort(key=lambda cid: (-self.sizes[cid], cid))
        else:
            todo.sort(key=lambda cid: (self.confidence.get(cid, 0.0), -self.sizes[cid], cid))
        return todo + [cid for cid in self.skipped if cid not in self.labelled]

    def next(self, current: int | None = None) -> int | None:
        """The next cluster to show (not `current`), None when every cluster is labelled."""
        for cid in self.ranked():
            if cid != current:
                return cid
        return None

    def shown(self, cluster_id: int) -> None:
        if not self.history or self.history[-1] != cluster_id:
            self.history.append(cluster_id)

    def skip(self, cluster_id: int) -> None:
        if cluster_id in self.skipped:
            self.skipped.remove(cluster_id)
        self.skipped.append(cluster_id)

    def back(self) -> int | None:
        """The cluster shown before the current one (the history forgets the current one), None at the start."""
        if len(self.history) < 2:
            return None
        self.history.pop()
        return self.history[-1]

    @property
    def total(self) -> int:
        return len(self.sizes)
