"""Current labels, derived from the events: who said what last, where they agree, what waits for adjudication.

Rules (issue 10, item 5):
- each annotator's latest decision on a target counts; an 'undo' withdraws that annotator's previous one; a
  'skip' is no opinion;
- an adjudication wins over every other decision (the latest one, when several);
- where the annotators who labelled a target agree (same global and local concepts, panel type and subtype),
  that is its label; where they differ the target is *contested* and has no label until adjudicated, unless
  the workspace setting `contested` is 'latest' (then the latest decision wins);
- per-image labels win over their cluster's label; a cluster's label applies to every image whose catalog
  `cluster_id` (in the same clustering) is that cluster, so images added later by `cluster assign` inherit it.
  Labels are therefore derived per cluster id and resolved per image when a query runs.
Image decisions count whatever clustering they were made in (they are about the image).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from workbench.annotate.events import Decision, Event, LabelStore

STATUSES = ("agreed", "adjudicated", "latest", "contested")


@dataclass(frozen=True)
class Label:
    """What a target shows: global concepts (the first is its primary), local concepts, panel type and subtype."""

    global_concepts: tuple[str, ...] = ()
    local_concepts: tuple[str, ...] = ()
    panel_type: str | None = None
    panel_subtype: str | None = None

    @classmethod
    def of(cls, decision: Decision) -> Label:
        return cls(decision.global_concepts, decision.local_concepts, decision.panel_type, decision.panel_subtype)

    def same_as(self, other: Label) -> bool:
        """Agreement: the same sets of concepts (order aside) and the same panel type and subtype."""
        return (
            set(self.global_concepts) == set(other.global_concepts)
            and set(self.local_concepts) == set(other.local_concepts)
            and self.panel_type == other.panel_type
            and self.panel_subtype == other.panel_subtype
        )

    def matches(self, concepts: Iterable[str] = (), panel_types: Iterable[str] = ()) -> bool:
        """Whether this label has one of `concepts` (global or local) and one of `panel_types` (type or subtype),
        compared without case; an empty list does not restrict."""
        concepts, panel_types = {c.casefold() for c in concepts}, {p.casefold() for p in panel_types}
        if concepts and not concepts & {c.casefold() for c in (*self.global_concepts, *self.local_concepts)}:
            return False
        return not panel_types or bool(
            panel_types & {(p or "").casefold() for p in (self.panel_type, self.panel_subtype)}
        )


@dataclass(frozen=True)
class TargetState:
    """A target's derived state: each annotator's standing label (adjudications aside), and the resulting label
    (None: contested)."""

    target_kind: str
    target: str
    status: str  # one of STATUSES
    label: Label | None
    by_annotator: Mapping[str, Label] = field(default_factory=dict)
    last_event: int = 0


@dataclass(frozen=True)
class CurrentLabels:
    """The derived labels of one clustering: per cluster id and per image key (overrides); contested targets."""

    clustering: str
    clusters: Mapping[int, Label]
    images: Mapping[str, Label]
    states: Mapping[tuple[str, str], TargetState]
    fingerprint: str = ""

    @property
    def contested(self) -> list[TargetState]:
        return [state for state in self.states.values() if state.status == "contested"]

    def label_of(self, key: str, cluster_id: int | None) -> tuple[Label | None, str]:
        """An image's label and where it comes from ('image', 'cluster' or '' when it has none)."""
        if key in self.images:
            return self.images[key], "image"
        if cluster_id is not None and cluster_id in self.clusters:
            return self.clusters[cluster_id], "cluster"
        return None, ""

    def selection(
        self, concepts: Iterable[str] = (), panel_types: Iterable[str] = ()
    ) -> tuple[tuple[int, ...], tuple[str, ...], tuple[str, ...]]:
        """What a label filter selects: (cluster ids whose label matches, image keys whose own label matches,
        image keys whose own label does not — they leave their matching cluster)."""
        concepts, panel_types = tuple(concepts), tuple(panel_types)
        clusters = tuple(sorted(cid for cid, label in self.clusters.items() if label.matches(concepts, panel_types)))
        keys_in, keys_out = [], []
        for key, label in sorted(self.images.items()):
            (keys_in if label.matches(concepts, panel_types) else keys_out).append(key)
        return clusters, tuple(keys_in), tuple(keys_out)


class Deriver:
    """Derives labels incrementally: `apply` new events (in id order), then `result()`; only touched targets are
    re-derived, so a long-lived reader follows a busy store at the cost of the new events alone."""

    def __init__(self, clustering: str, contested: str = "wait") -> None:
        self.clustering = clustering
        self.contested = contested
        self.last_id = 0
        self._stacks: dict[tuple[str, str], dict[str, list[Event]]] = {}
        self._states: dict[tuple[str, str], TargetState] = {}
        self._clusters: dict[int, Label] = {}
        self._images: dict[str, Label] = {}

    def apply(self, events: Iterable[Event]) -> set[tuple[str, str]]:
        """Add events newer than the last applied; returns the targets whose state was re-derived."""
        touched: set[tuple[str, str]] = set()
        for event in events:
            if event.id <= self.last_id:
                continue
            self.last_id = event.id
            decision = event.decision
            if decision.target_kind == "cluster" and decision.clustering != self.clustering:
                continue
            target = (decision.target_kind, decision.target)
            stack = self._stacks.setdefault(target, {}).setdefault(decision.annotator, [])
            if decision.action == "undo":
                if stack:
                    stack.pop()
            else:
                stack.append(event)
            touched.add(target)
        for target in touched:
            state = _state(*target, self._stacks[target], self.contested)
            kind, name = target
            table: dict = self._clusters if kind == "cluster" else self._images
            index = int(name) if kind == "cluster" else name
            if state is None:
                self._states.pop(target, None)
            else:
                self._states[target] = state
            if state is None or state.label is None:
                table.pop(index, None)
            else:
                table[index] = state.label
        return touched

    def result(self, fingerprint: str = "") -> CurrentLabels:
        return CurrentLabels(self.clustering, dict(self._clusters), dict(self._images), dict(self._states), fingerprint)


def derive(
    events: Iterable[Event], clustering: str, *, contested: str = "wait", fingerprint: str = ""
) -> CurrentLabels:
    """Derive the current labels of `clustering` from events in id order (see the module docstring)."""
    deriver = Deriver(clustering, contested)
    deriver.apply(events)
    return deriver.result(fingerprint)


def _state(kind: str, target: str, per_annotator: dict[str, list[Event]], contested: str) -> TargetState | None:
    standing = [stack[-1] for stack in per_annotator.values() if stack and stack[-1].decision.action != "skip"]
    if not standing:
        return None
    by_annotator = {e.decision.annotator: Label.of(e.decision) for e in standing if e.decision.action == "label"}
    last = max(event.id for event in standing)
    adjudications = [event for event in standing if event.decision.action == "adjudicate"]
    if adjudications:
        winner = max(adjudications, key=lambda event: event.id)
        return TargetState(kind, target, "adjudicated", Label.of(winner.decision), by_annotator, last)
    latest = max(standing, key=lambda event: event.id)
    labels = list(by_annotator.values())  # not empty: no adjudication, so every standing event is a label
    if all(label.same_as(labels[0]) for label in labels[1:]):
        return TargetState(kind, target, "agreed", Label.of(latest.decision), by_annotator, last)
    if contested == "latest":
        return TargetState(kind, target, "latest", Label.of(latest.decision), by_annotator, last)
    return TargetState(kind, target, "contested", None, by_annotator, last)


def current_labels(store: LabelStore, clustering: str) -> CurrentLabels:
    """Derive the current labels of `clustering` from a store (with its `contested` setting)."""
    fingerprint = store.fingerprint()
    policy = store.settings().get("contested", "wait")
    return derive(store.events(clustering), clustering, contested=policy, fingerprint=fingerprint)
