"""`MapLoop` connects the map (`MapView`) to its data (`ExploreStore`) and to the filter panel of notebook 03:
a box or lasso selection becomes `FigureFilter(keys=...)` in the panel, whose count, preview and "materialise
subset" then work on it. Also: cluster galleries and the standalone HTML of the map."""

from __future__ import annotations

import html
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import ipywidgets as widgets
import numpy as np

from workbench.catalog.db import Catalog
from workbench.catalog.filters import FigureFilter
from workbench.catalog.views import NOTE, coloured, preview_tiles
from workbench.catalog.widgets import FilterLoop, filter_panel
from workbench.errors import UserError
from workbench.explore.data import ExploreStore, MapPoints
from workbench.explore.widget import MapView, map_figure
from workbench.fileio import write_bytes_atomically


class MapLoop:
    """Feeds the map: selection -> the panel's `keys`; hover -> the card; click -> nearest neighbours; colour."""

    def __init__(self, view: MapView, store: ExploreStore, panel: FilterLoop, points: MapPoints, colour_by: str):
        self.view = view
        self.store = store
        self.panel = panel
        self.points = points
        self.selected_keys: tuple[str, ...] = ()
        self._lock = threading.RLock()  # widget events may arrive on several threads (kernel subshells)
        view.draw(points, colour_by)
        view.show_selection(0)
        view.on_select(self.select)
        view.on_hover(self.hover)
        view.on_click(self.neighbours)
        view.on_colour(self.recolour)

    def select(self, positions: np.ndarray) -> None:
        """Points chosen on the map (positions in `points`): the panel now filters by their keys."""
        with self._lock:
            self.selected_keys = tuple(str(key) for key in self.points.keys[positions])
            self.view.show_selection(len(self.selected_keys))
            self.panel.panel.replace_kept(keys=self.selected_keys)
            self.panel.update()

    def selection(self) -> FigureFilter:
        """The panel's filter (the map's keys and whatever the panel's controls add)."""
        return self.panel.panel.selection()

    def hover(self, position: int) -> None:
        with self._lock:
            items = self.store.items([str(self.points.keys[position])])
            self.view.show_card(items[0] if items else None)

    def neighbours(self, position: int) -> None:
        key = str(self.points.keys[position])
        with self._lock:
            try:
                self.view.show_neighbours(key, self.store.neighbours(key))
            except (UserError, OSError, ValueError) as error:
                self.view.show_neighbours(key, [], str(error))

    def recolour(self, colour_by: str) -> None:
        with self._lock:
            self.view.draw(self.points, colour_by)
            self.select(np.zeros(0, np.int64))


@dataclass(frozen=True)
class MapTimings:
    points_s: float  # reading the map and joining it to the catalog and clusters
    widget_s: float  # building the widget with its traces


def explore_map(
    catalog: Catalog,
    map_name: str,
    clustering: str = "",
    embeddings: str = "",
    colour_by: str = "cluster",
    max_points: int = 100_000,
    subset_name: str = "",
    preview_size: int = 8,
) -> tuple[MapLoop, MapTimings]:
    """Store + map + filter panel + loop over an open catalog; display `loop.view.widget` and `loop.panel.panel.widget`.

    Above `max_points` a random sample of the map is drawn (the widget says so). The default, 100k, is where plotly
    stops being fluid (benchmarks/map_responsiveness.py, JupyterLab in headless Chromium with software WebGL on two
    busy cores): cell to map 8.8 s / 10.4 s / 12.6 s and a box selection answered in 1.0 s / 2.0 s / 9.3 s at
    10k / 100k / 1M points; the widget sends 5 MB of plotly.js plus 8 bytes a point above 20k points.
    """
    started = time.perf_counter()
    store = ExploreStore(catalog, map_name, clustering, embeddings)
    points = store.points(max_points)
    loaded = time.perf_counter()
    view = MapView(f"{map_name} ({points.total:,} figures)", colour_by)
    panel = filter_panel(catalog, FigureFilter(), subset_name=subset_name, preview_size=preview_size, statistics=False)
    loop = MapLoop(view, store, panel, points, colour_by)
    return loop, MapTimings(loaded - started, time.perf_counter() - loaded)


def cluster_galleries(store: ExploreStore, clusters: int = 5, per_cluster: int = 20) -> widgets.Widget:
    """The largest `clusters` clusters: title (id, name, size) and up to `per_cluster` thumbnails with captions."""
    table = store.clusters()
    if not table:
        return widgets.HTML(value=coloured(f"no cluster table for clustering {store.clustering!r}", NOTE))
    parts: list[widgets.Widget] = []
    for row in table[:clusters]:
        name = row.get("name") or "(unnamed)"
        title = f"<h4>Cluster {int(row['cluster_id'])}: {html.escape(name)} · {int(row['size']):,} figures</h4>"
        items = store.items(store.cluster_members(int(row["cluster_id"]), per_cluster))
        grid = widgets.GridBox(preview_tiles(items, 96), layout=widgets.Layout(grid_template_columns="repeat(5, 20%)"))
        parts += [widgets.HTML(value=title), grid]
    box = widgets.VBox(parts)
    box.add_class("wb-cluster-galleries")
    return box


def save_map_html(points: MapPoints, path: str | Path, colour_by: str = "cluster", title: str = "") -> Path:
    """The map as one standalone HTML file (plotly.js inlined: opens offline), written atomically."""
    figure = map_figure(points, colour_by, title or f"embedding map ({len(points):,} figures)")
    text = figure.to_html(include_plotlyjs=True, full_html=True, config={"displaylogo": False})
    return write_bytes_atomically(path, text.encode())
