"""`MapView`: the embedding map as widgets only (a plotly FigureWidget of Scattergl traces, a colour dropdown, a
hover card, a neighbours area); it knows no catalog. `map_figure` builds the same traces as a plain figure for
the standalone HTML."""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Callable

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
from plotly.graph_objects import FigureWidget  # imported here: its first import costs seconds (nbformat, anywidget)
from traitlets import observe

from workbench.catalog.store import PreviewItem
from workbench.catalog.views import NOTE, coloured, preview_tiles
from workbench.explore.data import COLOUR_COLUMNS, UNKNOWN, MapPoints

TOP_CATEGORIES = 15  # colours in the legend; the rest are drawn grey as "other"
OTHER = "(all other values)"
HOVER_CAPTION = 80  # caption characters carried per point for the hover text
# Above this many points the widget sends no per-point hover text (~100 bytes a point, 11 MB at 100k: most of the
# payload); the hover card beside the map, filled by the kernel, shows thumbnail, caption and PMCID instead.
WIDGET_HOVER_TEXT_POINTS = 20_000
HTML_CAPTION_POINTS = 100_000  # above this, the standalone HTML's hover shows the PMCID only


def categories(points: MapPoints, colour_by: str) -> list[tuple[str, np.ndarray]]:
    """(label, point positions) per colour: the `TOP_CATEGORIES` most frequent values, then `other`, `unknown`."""
    values = points.facts[COLOUR_COLUMNS[colour_by]]
    counts = Counter(values.tolist())
    top = [value for value, _ in counts.most_common() if value != UNKNOWN][:TOP_CATEGORIES]
    if colour_by in ("year", "cluster"):
        top.sort(key=lambda value: (len(value.split(":")[0]), value))  # numeric order of years and cluster ids
    groups = [(value, np.flatnonzero(values == value)) for value in top]
    rest = np.flatnonzero(~np.isin(values, [*top, UNKNOWN]))
    if len(rest):
        groups.append((OTHER, rest))
    if counts.get(UNKNOWN):
        groups.append((UNKNOWN, np.flatnonzero(values == UNKNOWN)))
    return groups


def marker_size(points: int) -> int:
    return 2 if points > 50_000 else 4 if points > 5_000 else 7


def hover_texts(points: MapPoints, caption_chars: int) -> np.ndarray:
    """Per point `PMCID · caption start` (`caption_chars` 0: the PMCID alone)."""
    if not caption_chars:
        return points.facts["pmcid"]
    pairs = zip(points.facts["pmcid"], points.facts["caption"], strict=True)
    return np.asarray([f"{pmcid} · {caption[:caption_chars]}" for pmcid, caption in pairs], dtype=object)


def map_traces(
    points: MapPoints, colour_by: str, caption_chars: int | None = HOVER_CAPTION
) -> tuple[list[go.Scattergl], list[np.ndarray]]:
    """One Scattergl trace per colour, and the point positions each trace holds (for its selections).

    `caption_chars` None: no hover text at all (hover events still reach the widget's callbacks).
    """
    hover = None if caption_chars is None else hover_texts(points, caption_chars)
    size = marker_size(len(points))
    traces, positions = [], []
    for label, where in categories(points, colour_by):
        grey = {"color": "#bbbbbb"} if label in (OTHER, UNKNOWN) else {}
        traces.append(
            go.Scattergl(
                x=points.x[where],
                y=points.y[where],
                mode="markers",
                name=f"{label} ({len(where):,})",
                text=None if hover is None else hover[where],
                hovertemplate=None if hover is None else "%{text}<extra></extra>",
                hoverinfo="none" if hover is None else None,
                marker={"size": size, "opacity": 0.8, **grey},
            )
        )
        positions.append(where)
    return traces, positions


def map_layout(title: str) -> dict:
    return {
        "title": {"text": title},
        "dragmode": "select",
        "height": 560,
        "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
        "xaxis": {"visible": False},
        "yaxis": {"visible": False, "scaleanchor": "x"},
        "legend": {"itemsizing": "constant"},
        "template": "plotly_white",
    }


def map_figure(points: MapPoints, colour_by: str, title: str) -> go.Figure:
    """The map as a plain plotly figure (for `write_html`)."""
    traces, _ = map_traces(points, colour_by, HOVER_CAPTION if len(points) <= HTML_CAPTION_POINTS else 0)
    return go.Figure(data=traces, layout=map_layout(title))


class MapFigure(FigureWidget):
    """A FigureWidget whose selection events restyle every trace in one message.

    plotly answers a selection by setting `selectedpoints` on each trace, one restyle message apiece; with 16
    Scattergl traces of 100k points the browser then redraws 16 times (26 s in headless Chromium, against 1.4 s
    for one batched update, benchmarks/map_responsiveness.py).
    """

    @observe("_js2py_pointsCallback")
    def _handler_js2py_pointsCallback(self, change: dict) -> None:
        with self.batch_update():
            super()._handler_js2py_pointsCallback(change)


class MapView:
    """Widgets of the map: colour dropdown, note, the FigureWidget, a hover card, the selection line, neighbours."""

    def __init__(self, title: str, colour_by: str = "cluster") -> None:
        self.title = title
        self.colour = widgets.Dropdown(options=tuple(COLOUR_COLUMNS), value=colour_by, description="colour by")
        self.note = widgets.HTML(value="")
        self.figure = MapFigure(layout=map_layout(title))
        self.card_image = widgets.Image(format="jpeg", layout=widgets.Layout(width="160px", height="160px"))
        self.card_text = widgets.HTML(value=coloured("Hover over a point to see its figure.", NOTE))
        self.card = widgets.VBox([self.card_image, self.card_text], layout=widgets.Layout(width="260px"))
        self.selection_label = widgets.HTML(value="")
        self.neighbours_note = widgets.HTML(value=coloured("Click a point to see its nearest neighbours.", NOTE))
        self.neighbours = widgets.GridBox(layout=widgets.Layout(grid_template_columns="repeat(6, 16%)"))
        for name in ("colour", "note", "figure", "card", "selection_label", "neighbours_note", "neighbours"):
            getattr(self, name).add_class("wb-map-" + name.replace("_", "-"))
        self.widget = widgets.VBox(
            [
                widgets.HBox([self.colour, self.note]),
                widgets.HBox([self.figure, self.card]),
                self.selection_label,
                self.neighbours_note,
                self.neighbours,
            ]
        )
        self.positions: list[np.ndarray] = []
        self._chosen: dict[int, np.ndarray] = {}
        self._on_select: list[Callable[[np.ndarray], None]] = []
        self._on_hover: list[Callable[[int], None]] = []
        self._on_click: list[Callable[[int], None]] = []

    def draw(self, points: MapPoints, colour_by: str) -> None:
        """Replace the traces (a new colouring clears the selection)."""
        traces, self.positions = map_traces(
            points, colour_by, HOVER_CAPTION if len(points) <= WIDGET_HOVER_TEXT_POINTS else None
        )
        self._chosen = {}
        with self.figure.batch_update():
            self.figure.data = ()
            self.figure.add_traces(traces)
        for trace in self.figure.data:
            trace.on_selection(self._selected)
            trace.on_deselect(lambda trace, _points: self._cleared(trace))
            trace.on_hover(self._hovered)
            trace.on_click(self._clicked)
        shown = f"{len(points):,} points"
        if points.subsampled:
            shown = f"{len(points):,} of {points.total:,} points (a random sample: selections choose among these)"
        self.note.value = coloured(f"{shown}; box or lasso select to filter (double-click clears)", NOTE)

    def _selected(self, trace: go.Scattergl, points: object, _selector: object) -> None:
        """plotly calls this once per trace, in trace order; the last call announces the whole selection."""
        index = self.figure.data.index(trace)
        self._chosen[index] = self.positions[index][np.asarray(points.point_inds, dtype=np.int64)]
        if index == len(self.figure.data) - 1:
            chosen = [part for part in self._chosen.values() if len(part)]
            self._chosen = {}
            selected = np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, np.int64)
            for callback in self._on_select:
                callback(selected)

    def _cleared(self, trace: go.Scattergl) -> None:
        if self.figure.data.index(trace) == len(self.figure.data) - 1:
            for callback in self._on_select:
                callback(np.zeros(0, np.int64))

    def _point(self, trace: go.Scattergl, points: object) -> int | None:
        if not points.point_inds:
            return None
        return int(self.positions[self.figure.data.index(trace)][points.point_inds[0]])

    def _hovered(self, trace: go.Scattergl, points: object, _state: object) -> None:
        if (position := self._point(trace, points)) is not None:
            for callback in self._on_hover:
                callback(position)

    def _clicked(self, trace: go.Scattergl, points: object, _state: object) -> None:
        if (position := self._point(trace, points)) is not None:
            for callback in self._on_click:
                callback(position)

    def on_select(self, callback: Callable[[np.ndarray], None]) -> None:
        """`callback(positions)`: the selected points' positions in the drawn `MapPoints` (empty: cleared)."""
        self._on_select.append(callback)

    def on_hover(self, callback: Callable[[int], None]) -> None:
        self._on_hover.append(callback)

    def on_click(self, callback: Callable[[int], None]) -> None:
        self._on_click.append(callback)

    def on_colour(self, callback: Callable[[str], None]) -> None:
        self.colour.observe(lambda change: callback(change["new"]), names="value")

    def show_card(self, item: PreviewItem | None) -> None:
        if item is None:
            return
        self.card_image.value = item.thumbnail
        caption = item.caption if len(item.caption) <= 300 else item.caption[:297] + "..."
        self.card_text.value = (
            f'<a href="{html.escape(item.url)}" target="_blank">{html.escape(item.pmcid)}</a> · '
            f"{html.escape(item.license_group)}<div><small>{html.escape(caption)}</small></div>"
        )

    def show_selection(self, selected: int) -> None:
        self.selection_label.value = (
            f"<b>{selected:,}</b> points selected on the map: the panel below counts, previews and materialises them"
            if selected
            else coloured("No selection on the map: the panel below works on the whole catalog.", NOTE)
        )

    def show_neighbours(self, key: str, found: list[tuple[PreviewItem, float]], error: str = "") -> None:
        old, self.neighbours.children = self.neighbours.children, tuple(preview_tiles([item for item, _ in found]))
        for tile in old:
            tile.close()
        if error:
            self.neighbours_note.value = coloured(error, "#b00020")
        else:
            scores = ", ".join(f"{score:.2f}" for _, score in found)
            self.neighbours_note.value = coloured(f"{len(found)} nearest neighbours of {key} (cosine {scores}):", NOTE)
