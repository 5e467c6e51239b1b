"""`AnnotateLoop`: connects the widget (`AnnotateView`) to the clusters (`ClusterSource`), the queue and the label
store (through a `Labels` port), superintendent's split: the view knows no data, the store knows no widget.

While the annotator looks at a cluster, the thumbnails of the cluster the queue would show next are read in a
background thread (`prefetch`), so a decision is answered from memory (reading and scaling 20 JPEGs costs ~200 ms
on two busy cores). Each shown cluster is timed (render: from the decision to the next cluster's thumbnails in
the widget; record: the decision written to the store) so the benchmark and the progress line read real figures.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from workbench.annotate.queue import ClusterQueue
from workbench.annotate.source import ClusterSource
from workbench.annotate.suggest import Suggestion, suggest
from workbench.annotate.values import LabelValue
from workbench.annotate.widget import AnnotateView
from workbench.catalog.store import PreviewItem
from workbench.errors import UserError


class Labels(Protocol):
    """What the loop needs of a label store, for one annotator on one clustering."""

    annotator: str

    def record_cluster(self, cluster_id: int, label: LabelValue) -> None: ...

    def record_images(self, keys: list[str], label: LabelValue) -> None: ...

    def undo(self) -> str: ...  # undoes the annotator's latest decision; says what it undid ("" when nothing)

    def cluster_labels(self, mine: bool) -> dict[int, LabelValue]: ...  # current labels (mine: this annotator's)

    def image_labels(self, keys: list[str]) -> dict[str, LabelValue]: ...  # current per-image overrides


@dataclass
class Timings:
    render_s: list[float] = field(default_factory=list)  # decision -> next cluster shown
    record_s: list[float] = field(default_factory=list)  # decision written to the store
    per_cluster_s: list[float] = field(default_factory=list)  # cluster shown -> decided (the annotator's pace)


class AnnotateLoop:
    """Shows one cluster at a time and turns the view's actions into decisions in the store."""

    def __init__(
        self,
        view: AnnotateView,
        source: ClusterSource,
        labels: Labels,
        order: str = "largest",
        embeddings: str = "",
        prefetch: bool = True,
    ) -> None:
        self.view = view
        self.source = source
        self.labels = labels
        self.queue = ClusterQueue(source.sizes(), order)
        self.timings = Timings()
        self.current: int | None = None
        self.suggestions: dict[int, Suggestion] = {}
        self._centroids = source.centroids(embeddings)
        self._shown_at = time.perf_counter()
        self._lock = threading.RLock()  # widget events may arrive on several threads (kernel subshells)
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="annotate-prefetch") if prefetch else None
        self._ahead: dict[int, Future[list[PreviewItem]]] = {}
        for action in ("save", "accept", "skip", "undo", "back", "override"):
            view.on(action, getattr(self, action))
        view.on("enlarge", self.enlarge)
        self._refresh_labels()
        self.show(self.queue.next())

    # --- showing ------------------------------------------------------------------------------------------------
    def _refresh_labels(self) -> None:
        mine = self.labels.cluster_labels(mine=True)
        self.queue.labelled = {cid for cid, label in mine.items() if not label.empty}
        if self._centroids is not None:
            ids, rows = self._centroids
            known = {cid: label for cid, label in self.labels.cluster_labels(mine=False).items() if not label.empty}
            self.suggestions = suggest(ids, rows, known)
            self.queue.confidence = {cid: s.confidence for cid, s in self.suggestions.items()}

    def show(self, cluster_id: int | None) -> None:
        """Show a cluster (its current label, else the suggestion pre-filled), or the end of the queue."""
        with self._lock:
            self.current = cluster_id
            if cluster_id is None:
                self.view.show_done("Every cluster is labelled: undo or back to revisit one.")
                self._progress()
                return
            self.queue.shown(cluster_id)
            keys = self.source.members(cluster_id, len(self.view.tiles))
            ahead = self._ahead.pop(cluster_id, None)
            items = ahead.result() if ahead is not None else self.source.items(keys)
            overrides = self.labels.image_labels(keys)
            badges = {key: "image label: " + label.describe() for key, label in overrides.items()}
            current = self.labels.cluster_labels(mine=True).get(cluster_id)
            suggestion = self.suggestions.get(cluster_id)
            name = self.source.name(cluster_id)
            size = self.source.sizes().get(cluster_id, 0)
            title = f"Cluster {cluster_id}" + (f": {name}" if name else "") + f" · {size:,} figures"
            prefill = current or (suggestion.label if suggestion else LabelValue())
            self.view.show_cluster(title, items, prefill, badges)
            self.view.show_suggestion(
                suggestion.label if suggestion else None, suggestion.confidence if suggestion else 0
            )
            self._shown_at = time.perf_counter()
            self._progress()  # last: the progress line changing means the whole cluster is shown
            self._read_ahead(self.queue.next(cluster_id))

    def _read_ahead(self, cluster_id: int | None) -> None:
        """Start reading the thumbnails of the cluster likely shown next (kept: the two latest guesses)."""
        if self._reader is None or cluster_id is None or cluster_id in self._ahead:
            return
        keys = self.source.members(cluster_id, len(self.view.tiles))
        self._ahead[cluster_id] = self._reader.submit(self.source.items, keys)
        for stale in list(self._ahead)[:-2]:
            self._ahead.pop(stale).cancel()

    def _progress(self) -> None:
        pace = self.timings.per_cluster_s
        mean = sum(pace) / len(pace) if pace else None
        self.view.show_progress(len(self.queue.labelled), self.queue.total, mean)

    def _advance(self, started: float) -> None:
        self.show(self.queue.next(self.current))
        self.timings.render_s.append(time.perf_counter() - started)

    # --- actions ------------------------------------------------------------------------------------------------
    def save(self) -> None:
        """The pickers' label for the whole cluster, then the next cluster."""
        with self._lock:
            if self.current is None:
                return
            label = self.view.value()
            if label.empty:
                self.view.show_status("choose at least one global concept (keys 1-9) before saving", error=True)
                return
            started = time.perf_counter()
            try:
                self.labels.record_cluster(self.current, label)
            except UserError as error:
                self.view.show_status(str(error), error=True)
                return
            self.timings.record_s.append(time.perf_counter() - started)
            self.timings.per_cluster_s.append(started - self._shown_at)
            self.view.show_status(f"cluster {self.current}: {label.describe()}")
            self._refresh_labels()
            self._advance(started)

    def accept(self) -> None:
        """Fill the pickers with the suggestion (Enter then saves it)."""
        with self._lock:
            if self.view.suggested is not None:
                self.view.set_value(self.view.suggested)

    def skip(self) -> None:
        with self._lock:
            if self.current is None:
                return
            started = time.perf_counter()
            self.queue.skip(self.current)
            self.view.show_status(f"skipped cluster {self.current}")
            self._advance(started)

    def undo(self) -> None:
        """Undo this annotator's latest decision (a new event) and show its cluster again."""
        with self._lock:
            undone = self.labels.undo()
            if not undone:
                self.view.show_status("nothing to undo", error=True)
                return
            self._refresh_labels()
            self.view.show_status(f"undid {undone}")
            target = undone.removeprefix("cluster ")
            self.show(int(target) if target.isdigit() else self.current)

    def back(self) -> None:
        with self._lock:
            previous = self.queue.back()
            if previous is None:
                self.view.show_status("no earlier cluster", error=True)
                return
            self.show(previous)

    def override(self) -> None:
        """Give the selected images the pickers' label (per-image labels win over the cluster's)."""
        with self._lock:
            keys = self.view.selected_keys()
            label = self.view.value()
            if not keys or label.empty:
                self.view.show_status("select images and choose a global concept first", error=True)
                return
            started = time.perf_counter()
            try:
                self.labels.record_images(keys, label)
            except UserError as error:
                self.view.show_status(str(error), error=True)
                return
            self.timings.record_s.append(time.perf_counter() - started)
            self.view.show_status(f"{len(keys)} image(s): {label.describe()}")
            self.show(self.current)

    def enlarge(self, key: str) -> None:
        with self._lock:
            if key and (item := self.source.enlarged(key)) is not None:
                self.view.show_large(item)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.shutdown(wait=True, cancel_futures=True)
        self.source.close()
