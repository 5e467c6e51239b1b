"""An in-memory label store with the `Labels` port of `workbench.annotate.loop` (events, undo as an event)."""

from __future__ import annotations

from dataclasses import dataclass, field

from workbench.annotate.values import Choices, LabelValue

CHOICES = Choices(
    {
        "Clinical Imaging": ("x-ray radiography", "magnetic resonance"),
        "Microscopy": ("fluorescence microscopy", "light microscopy"),
        "Plots and Charts": ("bar plot", "line plot"),
    },
    panel_types=("single", "multiple"),
    panel_subtypes=("single panel", "multiple panels: images"),
    version="test-1",
    definitions={"single": "one image"},
)


@dataclass
class MemoryLabels:
    annotator: str = "ann"
    events: list[tuple[str, str, LabelValue | None]] = field(default_factory=list)  # (annotator, target, label)

    def record_cluster(self, cluster_id: int, label: LabelValue) -> None:
        self.events.append((self.annotator, f"cluster {cluster_id}", label))

    def record_images(self, keys: list[str], label: LabelValue) -> None:
        self.events.extend((self.annotator, f"image {key}", label) for key in keys)

    def undo(self) -> str:
        live = self._live()
        mine = [target for who, target, _ in self.events if who == self.annotator and target in live]
        if not mine:
            return ""
        self.events.append((self.annotator, mine[-1], None))
        return mine[-1]

    def _live(self, annotator: str | None = None) -> dict[str, LabelValue]:
        stacks: dict[tuple[str, str], list[LabelValue]] = {}
        for who, target, label in self.events:
            if annotator is not None and who != annotator:
                continue
            stack = stacks.setdefault((who, target), [])
            if label is None:
                if stack:
                    stack.pop()
            else:
                stack.append(label)
        return {target: stack[-1] for (_, target), stack in stacks.items() if stack}

    def cluster_labels(self, mine: bool) -> dict[int, LabelValue]:
        live = self._live(self.annotator if mine else None)
        return {int(t.split()[1]): label for t, label in live.items() if t.startswith("cluster ")}

    def image_labels(self, keys: list[str]) -> dict[str, LabelValue]:
        live = self._live()
        return {key: live[f"image {key}"] for key in keys if f"image {key}" in live}
