"""Disagreement review (issue 10, item 4): the contested clusters one at a time, the annotators' labels side by
side over the cluster's thumbnails, and a button per annotator to adopt that label as the adjudication (an
'adjudicate' event in the label store: it wins over every other decision). `ReviewView` is widgets only;
`ReviewLoop` reads the disagreement queue (`workbench.annotate.agreement`) and records adjudications."""

from __future__ import annotations

import html
import threading
from collections.abc import Callable

import ipywidgets as widgets

from workbench.annotate.agreement import agreement
from workbench.annotate.derive import current_labels
from workbench.annotate.events import Decision, LabelStore
from workbench.annotate.source import ClusterSource
from workbench.annotate.values import LabelValue
from workbench.catalog.db import Catalog
from workbench.catalog.views import NOTE, OK, coloured, preview_tiles

REVIEW_THUMBNAILS = 10


class ReviewView:
    """Header, the contested cluster's thumbnails, one column per annotator with an 'adopt' button, skip."""

    def __init__(self) -> None:
        self.header = widgets.HTML()
        self.title = widgets.HTML()
        self.grid = widgets.GridBox(layout=widgets.Layout(grid_template_columns="repeat(5, 150px)"))
        self.columns = widgets.HBox()
        self.skip = widgets.Button(description="next contested cluster")
        self.status = widgets.HTML()
        for name in ("header", "title", "grid", "columns", "skip", "status"):
            getattr(self, name).add_class(f"wb-review-{name}")
        self.widget = widgets.VBox([self.header, self.title, self.columns, self.skip, self.status, self.grid])
        self.widget.add_class("wb-review")
        self._adopt: list[Callable[[str], None]] = []

    def on_adopt(self, callback: Callable[[str], None]) -> None:
        """`callback(annotator)`: that annotator's label becomes the adjudicated one."""
        self._adopt.append(callback)

    def show(self, title: str, items: list, labels: dict[str, LabelValue]) -> None:
        self.title.value = f"<h3>{html.escape(title)}</h3>"
        old, self.grid.children = self.grid.children, tuple(preview_tiles(items, 120))
        for tile in old:
            tile.close()
        columns = []
        for name, label in labels.items():
            button = widgets.Button(description=f"adopt {name}'s label", button_style="info")
            button.add_class("wb-review-adopt")
            button.on_click(lambda _b, name=name: [callback(name) for callback in self._adopt])
            text = widgets.HTML(f"<b>{html.escape(name)}</b><div>{html.escape(label.describe())}</div>")
            columns.append(widgets.VBox([text, button], layout=widgets.Layout(width="280px", padding="4px")))
        self.columns.children = tuple(columns)

    def show_empty(self, text: str) -> None:
        self.title.value = coloured(text, OK)
        self.grid.children, self.columns.children = (), ()


class ReviewLoop:
    """Feeds the review view from the disagreement queue; adjudications are recorded as `adjudicator`'s."""

    def __init__(self, view: ReviewView, source: ClusterSource, store: LabelStore, adjudicator: str) -> None:
        self.view, self.source, self.store, self.adjudicator = view, source, store, adjudicator
        self.queue: list[dict] = []
        self.position = 0
        self._lock = threading.RLock()
        view.on_adopt(self.adopt)
        view.skip.on_click(lambda _b: self.next())
        self.reload()

    def reload(self) -> None:
        with self._lock:
            report = agreement(current_labels(self.store, self.source.clustering))
            self.queue = list(report.contested)
            kappa = "n/a" if report.cohen_kappa is None else f"{report.cohen_kappa:.2f}"
            self.view.header.value = coloured(
                f"{len(self.queue)} contested cluster(s) · {report.adjudicated} adjudicated · "
                f"Cohen's kappa {kappa} over {report.items} clusters labelled twice or more",
                NOTE,
            )
            self.position = min(self.position, max(0, len(self.queue) - 1))
            self.show()

    @property
    def current(self) -> dict | None:
        return self.queue[self.position] if self.queue else None

    def show(self) -> None:
        entry = self.current
        if entry is None:
            self.view.show_empty("No contested clusters: every cluster labelled twice is agreed or adjudicated.")
            return
        cluster_id = int(entry["target"])
        labels = {
            name: LabelValue(tuple(v["global"]), tuple(v["local"]), v["panel_type"] or "", v["panel_subtype"] or "")
            for name, v in entry["annotators"].items()
        }
        items = self.source.items(self.source.members(cluster_id, REVIEW_THUMBNAILS))
        size = self.source.sizes().get(cluster_id, 0)
        self.view.show(f"Contested cluster {cluster_id} · {size:,} figures", items, labels)

    def next(self) -> None:
        with self._lock:
            if self.queue:
                self.position = (self.position + 1) % len(self.queue)
            self.show()

    def adopt(self, annotator: str) -> None:
        """Adjudicate the shown cluster with `annotator`'s label."""
        with self._lock:
            entry = self.current
            if entry is None or annotator not in entry["annotators"]:
                return
            chosen = entry["annotators"][annotator]
            decision = Decision(
                self.adjudicator,
                self.source.clustering,
                "cluster",
                entry["target"],
                tuple(chosen["global"]),
                tuple(chosen["local"]),
                chosen["panel_type"],
                chosen["panel_subtype"],
                f"adjudicated: {annotator}'s label",
                action="adjudicate",
            )
            self.store.record(decision, strict=False)  # the annotators' labels were checked when recorded
            self.view.status.value = coloured(f"cluster {entry['target']}: {annotator}'s label adopted", OK)
            self.reload()

    def close(self) -> None:
        self.source.close()


def review_widget(catalog: Catalog, adjudicator: str, clustering: str = "") -> ReviewLoop:
    """The disagreement review over an open catalog; display `loop.view.widget`."""
    source = ClusterSource(catalog, clustering)
    return ReviewLoop(ReviewView(), source, LabelStore(catalog.workspace), adjudicator)
