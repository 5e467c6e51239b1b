"""How the filter panel shows things: preview tiles (square thumbnail, link, licence, caption, why it matched),
a grid of them, coloured notes, and plotly figures as widget outputs."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence

import ipywidgets as widgets
import plotly.graph_objects as go
import plotly.io as pio

from workbench.catalog.store import PreviewItem

ERROR, OK, NOTE = "#b00020", "#1b5e20", "#555555"


def coloured(text: str, colour: str) -> str:
    return f'<span style="color:{colour}">{html.escape(text)}</span>' if text else ""


def preview_tiles(items: Sequence[PreviewItem], thumbnail_px: int = 128) -> list[widgets.Widget]:
    """One tile per item: a square thumbnail, the article link, licence, caption and (ranked) why it matched."""
    tiles = []
    for item in items:
        caption = item.caption if len(item.caption) <= 200 else item.caption[:197] + "..."
        lines = [f"{html.escape(caption)}"]
        if item.score is not None:
            where = ", ".join(item.matched) or "no indexed field"
            lines.insert(
                0, f'<span style="color:{NOTE}">matched in {html.escape(where)} · BM25 {item.score:.2f}</span>'
            )
        text = (
            f'<a href="{html.escape(item.url)}" target="_blank">{html.escape(item.pmcid)}</a> '
            f"· {html.escape(item.license_group)}"
            + "".join(f'<div style="line-height:1.3"><small>{line}</small></div>' for line in lines)
        )
        size = f"{thumbnail_px}px"
        image = widgets.Image(
            value=item.thumbnail, format="jpeg", layout=widgets.Layout(width=size, height=size, object_fit="contain")
        )
        tiles.append(widgets.VBox([image, widgets.HTML(value=text)], layout=widgets.Layout(align_items="flex-start")))
    return tiles


def preview_grid(items: Sequence[PreviewItem], empty: str = "nothing matches") -> widgets.Widget:
    """A grid of `preview_tiles` (or a note when there are none), e.g. for ranked search results."""
    if not items:
        return widgets.HTML(value=f"<i>{html.escape(empty)}</i>")
    return widgets.GridBox(preview_tiles(items), layout=widgets.Layout(grid_template_columns="repeat(4, 25%)"))


def plot_output(figure: go.Figure) -> dict:
    data = json.loads(pio.to_json(figure, validate=False))
    bundle = {"application/vnd.plotly.v1+json": {**data, "config": {"displaylogo": False}}, "text/plain": "plot"}
    return {"output_type": "display_data", "data": bundle, "metadata": {}}
