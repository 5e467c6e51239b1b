"""Catalog statistics, aggregated in DuckDB (so they stay small on 24M rows) and drawn with plotly."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from workbench.catalog import sql
from workbench.catalog.db import Catalog
from workbench.catalog.filters import FigureFilter
from workbench.catalog.live_labels import COUNT_BY_LABEL

LIST_COLUMNS = tuple(sql.COUNT_BY_LIST_ITEM)


def catalog_summary(catalog: Catalog, selection: FigureFilter | None = None) -> dict[str, Any]:
    """figures, articles, duplicates, image_bytes, first_year, last_year of the selection."""
    names = ("figures", "articles", "duplicates", "image_bytes", "first_year", "last_year")
    return dict(zip(names, catalog.query(sql.SUMMARY, selection)[0], strict=True))


def count_by(
    catalog: Catalog, column: str, selection: FigureFilter | None = None, top: int = 20
) -> list[tuple[Any, int]]:
    """The `top` most frequent values of a column (list columns: of their items), most frequent first."""
    if column in COUNT_BY_LABEL:  # the current annotation labels, joined at query time
        rows = catalog.query(COUNT_BY_LABEL[column], selection, top)
    elif column in sql.COUNT_BY_LIST_ITEM:
        items = sql.COUNT_BY_LIST_ITEM[column]
        rows = catalog.query(sql.COUNT_ITEMS.replace("{items}", items), selection, top)
    elif column in sql.GROUPABLE_COLUMNS and selection is not None and (selection.concepts or selection.panel_types):
        counts = catalog.labelled_counts(selection, column)  # per cluster, summed: no row-by-row label test
        rows = sorted(counts.items(), key=lambda item: (-item[1], item[0] is None, item[0]))[:top]
    elif column in sql.GROUPABLE_COLUMNS:
        rows = catalog.query(sql.COUNT_BY, selection, top, column=column)
    else:
        raise ValueError(f"cannot count by {column!r}; choose from {', '.join(sql.GROUPABLE_COLUMNS + LIST_COLUMNS)}")
    return [(value, int(n)) for value, n in rows]


def figures_per_article(catalog: Catalog, selection: FigureFilter | None = None) -> list[tuple[int, int]]:
    """(figures in an article, number of such articles)."""
    return [(int(k), int(n)) for k, n in catalog.query(sql.FIGURES_PER_ARTICLE, selection)]


def histogram(
    catalog: Catalog, column: str, selection: FigureFilter | None = None, bin_width: int = 50
) -> list[tuple[int, int]]:
    """(bin start, figures) for `caption_length`, `width` or `height`, in bins of `bin_width`."""
    if column not in sql.HISTOGRAM:
        raise ValueError(f"no histogram for {column!r}; choose from {', '.join(sql.HISTOGRAM)}")
    if bin_width < 1:
        raise ValueError(f"bin_width must be 1 or more, got {bin_width}")
    compiled = catalog.compile(selection)
    rows = catalog.execute(compiled.render(sql.HISTOGRAM[column]), [bin_width, *compiled.params], selection).fetchall()
    return [(int(b) * bin_width, int(n)) for b, n in rows]


def image_sizes(
    catalog: Catalog, selection: FigureFilter | None = None, bin_px: int = 100
) -> list[tuple[int, int, int]]:
    """(width bin, height bin, figures): the 2-D image size distribution."""
    compiled = catalog.compile(selection)
    rows = catalog.execute(compiled.render(sql.IMAGE_SIZES), [bin_px, bin_px, *compiled.params], selection).fetchall()
    return [(int(w) * bin_px, int(h) * bin_px, int(n)) for w, h, n in rows]


# --- plotly figures -----------------------------------------------------------------------------------------
def empty_figure(title: str, note: str, height: int = 200) -> go.Figure:
    """A plot with nothing to draw: the note in place of meaningless axes."""
    figure = go.Figure()
    figure.add_annotation(text=note, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5, font={"size": 14})
    hidden = {"visible": False}
    figure.update_layout(title=title, height=height, margin={"t": 50}, xaxis=hidden, yaxis=hidden)
    return figure


def _bar(pairs: list[tuple[Any, int]], title: str, axis: str, horizontal: bool = False, empty: str = "") -> go.Figure:
    if not pairs:
        return empty_figure(title, empty or "no figures in this selection")
    labels = ["(none)" if value is None else str(value) for value, _ in pairs]
    counts = [n for _, n in pairs]
    bar = go.Bar(y=labels[::-1], x=counts[::-1], orientation="h") if horizontal else go.Bar(x=labels, y=counts)
    figure = go.Figure(bar)
    figure.update_layout(
        title=title,
        xaxis_title="figures" if horizontal else axis,
        yaxis_title=axis if horizontal else "figures",
        height=360,
        margin={"t": 50},
    )
    return figure


def license_figure(catalog: Catalog, selection: FigureFilter | None = None) -> go.Figure:
    return _bar(count_by(catalog, "license_group", selection), "Figures by licence group", "licence group")


def year_figure(catalog: Catalog, selection: FigureFilter | None = None) -> go.Figure:
    years = sorted(count_by(catalog, "article_year", selection, top=500), key=lambda p: (p[0] is None, p[0] or 0))
    return _bar(years, "Figures by publication year", "year")


def journal_figure(catalog: Catalog, selection: FigureFilter | None = None, top: int = 20) -> go.Figure:
    return _bar(count_by(catalog, "article_journal", selection, top), f"Top {top} journals", "journal", True)


def article_type_figure(catalog: Catalog, selection: FigureFilter | None = None) -> go.Figure:
    return _bar(count_by(catalog, "article_type", selection), "Figures by article type", "article type")


def mesh_figure(catalog: Catalog, selection: FigureFilter | None = None, top: int = 20) -> go.Figure:
    pairs = count_by(catalog, "article_mesh_terms", selection, top)
    note = "no MeSH terms for these figures (run `workbench enrich`, then `workbench catalog refresh`)"
    return _bar(pairs, f"Top {top} MeSH terms", "MeSH term", True, empty=note)


def figures_per_article_figure(catalog: Catalog, selection: FigureFilter | None = None) -> go.Figure:
    pairs = figures_per_article(catalog, selection)
    figure = go.Figure(go.Bar(x=[k for k, _ in pairs], y=[n for _, n in pairs]))
    figure.update_layout(
        title="Figures per article",
        xaxis_title="figures in the article",
        yaxis_title="articles",
        height=360,
        margin={"t": 50},
    )
    return figure


def caption_length_figure(catalog: Catalog, selection: FigureFilter | None = None, bin_width: int = 50) -> go.Figure:
    pairs = histogram(catalog, "caption_length", selection, bin_width)
    figure = go.Figure(go.Bar(x=[b + bin_width / 2 for b, _ in pairs], y=[n for _, n in pairs], width=bin_width))
    figure.update_layout(
        title="Caption length", xaxis_title="characters", yaxis_title="figures", height=360, margin={"t": 50}
    )
    return figure


def image_size_figure(catalog: Catalog, selection: FigureFilter | None = None, bin_px: int = 100) -> go.Figure:
    cells = image_sizes(catalog, selection, bin_px)
    figure = go.Figure(
        go.Scatter(
            x=[w + bin_px / 2 for w, _, _ in cells],
            y=[h + bin_px / 2 for _, h, _ in cells],
            mode="markers",
            marker={
                "size": [4 + 20 * (n / max(c[2] for c in cells)) ** 0.5 for _, _, n in cells] if cells else [],
                "color": [n for _, _, n in cells],
                "colorscale": "Viridis",
                "showscale": True,
            },
            text=[f"{n} figures" for _, _, n in cells],
        )
    )
    figure.update_layout(
        title="Image sizes (pixels)", xaxis_title="width", yaxis_title="height", height=420, margin={"t": 50}
    )
    return figure


def all_figures(catalog: Catalog, selection: FigureFilter | None = None) -> dict[str, go.Figure]:
    """Every statistics plot of the notebook, by name."""
    return {
        "license_group": license_figure(catalog, selection),
        "year": year_figure(catalog, selection),
        "journal": journal_figure(catalog, selection),
        "article_type": article_type_figure(catalog, selection),
        "mesh": mesh_figure(catalog, selection),
        "figures_per_article": figures_per_article_figure(catalog, selection),
        "image_size": image_size_figure(catalog, selection),
        "caption_length": caption_length_figure(catalog, selection),
    }
