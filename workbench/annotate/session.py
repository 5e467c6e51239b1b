"""One annotator's session: the label store seen through the loop's `Labels` port, and `annotate_widget()` that
builds source + view + loop for a notebook or the Voila app.

`StoreLabels` appends `Decision`s to `LabelStore` (WS/state/annotations.sqlite, safe with other writers) and keeps
two incremental `Deriver`s (everyone's labels, this annotator's own) that read only the events added since the last
look, so showing the next cluster does not re-read the whole log.
"""

from __future__ import annotations

from workbench.annotate.derive import Deriver, Label
from workbench.annotate.events import Decision, LabelStore
from workbench.annotate.loop import AnnotateLoop
from workbench.annotate.source import ClusterSource
from workbench.annotate.taxonomy import Taxonomy
from workbench.annotate.values import Choices, LabelValue
from workbench.annotate.widget import GRID_SIZE, AnnotateView
from workbench.catalog.db import Catalog
from workbench.errors import UserError


def choices_of(taxonomy: Taxonomy) -> Choices:
    """What the pickers offer for a taxonomy."""
    return Choices(
        {name: tuple(taxonomy.locals[name]) for name in taxonomy.globals},
        tuple(taxonomy.panel_types),
        tuple(taxonomy.panel_subtypes),
        taxonomy.version,
        dict(taxonomy.definitions),
    )


def value_of(label: Label) -> LabelValue:
    return LabelValue(label.global_concepts, label.local_concepts, label.panel_type or "", label.panel_subtype or "")


class StoreLabels:
    """The `Labels` port over a `LabelStore` for one annotator and one clustering."""

    def __init__(self, store: LabelStore, annotator: str, clustering: str) -> None:
        if not annotator.strip():
            raise UserError("an annotator name is needed (who is labelling?)")
        self.store = store
        self.annotator = annotator.strip()
        self.clustering = clustering
        policy = store.settings().get("contested", "wait")
        self._everyone = Deriver(clustering, policy)
        self._mine = Deriver(clustering, policy)
        self._fingerprint = ""
        self._my_events: list[tuple[int, str, str, str]] = []  # (id, kind, target, action) of this annotator

    def _follow(self) -> None:
        fingerprint = self.store.fingerprint()
        if fingerprint == self._fingerprint:
            return
        events = self.store.events(self.clustering, after=self._everyone.last_id)
        self._everyone.apply(events)
        mine = [event for event in events if event.decision.annotator == self.annotator]
        self._mine.apply(mine)
        self._mine.last_id = self._everyone.last_id
        self._my_events += [(e.id, e.decision.target_kind, e.decision.target, e.decision.action) for e in mine]
        self._fingerprint = fingerprint

    def _decision(self, kind: str, target: str, label: LabelValue) -> Decision:
        return Decision(
            self.annotator,
            self.clustering,
            kind,
            target,
            label.globals,
            label.locals,
            label.panel_type or None,
            label.panel_subtype or None,
            label.note,
        )

    def record_cluster(self, cluster_id: int, label: LabelValue) -> None:
        self.store.record(self._decision("cluster", str(cluster_id), label))

    def record_images(self, keys: list[str], label: LabelValue) -> None:
        self.store.record_many([self._decision("image", key, label) for key in keys])

    def undo(self) -> str:
        """Withdraw this annotator's latest standing decision (replaying its own events: undo pops a stack)."""
        self._follow()
        stacks: dict[tuple[str, str], list[int]] = {}
        for event_id, kind, target, action in self._my_events:
            stack = stacks.setdefault((kind, target), [])
            if action == "undo":
                if stack:
                    stack.pop()
            else:
                stack.append(event_id)
        live = [(stack[-1], target) for target, stack in stacks.items() if stack]
        if not live:
            return ""
        _, (kind, target) = max(live)
        self.store.undo(self.annotator, self.clustering, target, kind)
        return f"{kind} {target}"

    def cluster_labels(self, mine: bool) -> dict[int, LabelValue]:
        self._follow()
        result = (self._mine if mine else self._everyone).result()
        return {cid: value_of(label) for cid, label in result.clusters.items()}

    def image_labels(self, keys: list[str]) -> dict[str, LabelValue]:
        self._follow()
        images = self._everyone.result().images
        return {key: value_of(images[key]) for key in keys if key in images}


def annotate_widget(
    catalog: Catalog,
    annotator: str,
    clustering: str = "",
    order: str = "largest",
    embeddings: str = "",
    taxonomy: Taxonomy | str | None = None,
    grid_size: int = GRID_SIZE,
    prefetch: bool = True,
) -> AnnotateLoop:
    """Source + view + loop over an open catalog; display `loop.view.widget`."""
    source = ClusterSource(catalog, clustering)
    store = LabelStore(catalog.workspace, taxonomy)
    labels = StoreLabels(store, annotator, source.clustering)
    view = AnnotateView(choices_of(store.taxonomy), grid_size)
    return AnnotateLoop(view, source, labels, order, embeddings, prefetch)
