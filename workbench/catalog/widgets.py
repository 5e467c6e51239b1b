"""The filter panel of notebook 03, in three separate parts (superintendent style):

- `CatalogStore` answers questions from the catalog (counts, previews with thumbnails, subsets);
- `FilterPanel` is only ipywidgets: controls, a live count, a preview grid, a button; it knows no catalog;
- `FilterLoop` connects them: a control changes -> filter -> store -> panel.

Build all three with `filter_panel(catalog, initial_filter)` and display `loop.panel.widget`.
"""

from __future__ import annotations

import html
import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ipywidgets as widgets
from PIL import Image

from workbench.catalog.db import Catalog
from workbench.catalog.filters import FigureFilter
from workbench.catalog.stats import count_by
from workbench.catalog.subset import SubsetResult, SubsetSpec, materialise_subset
from workbench.licenses import LICENSE_GROUPS

PMC_ARTICLE_URL = "https://pmc.ncbi.nlm.nih.gov/articles/{pmcid}/"
_INLINE_CHOICES = {"any": None, "cited in the text": True, "never cited": False}


@dataclass(frozen=True)
class PreviewItem:
    key: str
    pmcid: str
    caption: str
    license_group: str
    url: str
    thumbnail: bytes  # JPEG, at most `thumbnail_px` on its longer side


@dataclass(frozen=True)
class FilterOptions:
    """Values the panel offers (the most frequent ones of the catalog)."""

    journals: tuple[str, ...]
    article_types: tuple[str, ...]
    concepts: tuple[str, ...]
    panel_types: tuple[str, ...]
    year_min: int
    year_max: int


class CatalogStore:
    """The panel's only access to data."""

    def __init__(self, catalog: Catalog, thumbnail_px: int = 128) -> None:
        self.catalog = catalog
        self.thumbnail_px = thumbnail_px

    def options(self, top: int = 200) -> FilterOptions:
        def values(column: str) -> tuple[str, ...]:
            return tuple(sorted(str(v) for v, _ in count_by(self.catalog, column, None, top) if v is not None))

        years = [int(y) for y in values("article_year")] or [2000]
        return FilterOptions(
            values("article_journal"),
            values("article_type"),
            values("concepts"),
            values("panel_type"),
            min(years),
            max(years),
        )

    def count(self, selection: FigureFilter) -> int:
        return self.catalog.count(selection)

    def preview(self, selection: FigureFilter, limit: int) -> list[PreviewItem]:
        return [self._item(row) for row in self.catalog.preview(selection, limit)]

    def _item(self, row: dict[str, Any]) -> PreviewItem:
        return PreviewItem(
            row["key"],
            row["pmcid"],
            row["caption"],
            row["license_group"],
            PMC_ARTICLE_URL.format(pmcid=row["pmcid"]),
            self._thumbnail(row),
        )

    def _thumbnail(self, row: dict[str, Any]) -> bytes:
        path = self.catalog.workspace.root / row["shard"]
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                data = os.pread(fd, row["jpg_size"], row["jpg_offset"])
            finally:
                os.close(fd)
            image = Image.open(io.BytesIO(data))
            image.thumbnail((self.thumbnail_px, self.thumbnail_px))
            buffer = io.BytesIO()
            image.convert("RGB").save(buffer, format="JPEG", quality=80)
            return buffer.getvalue()
        except (OSError, ValueError):
            return b""  # a missing shard shows an empty tile; the subset step reports it properly

    def materialise(self, name: str, selection: FigureFilter, force: bool = False) -> SubsetResult:
        return materialise_subset(self.catalog, SubsetSpec(name, selection, force=force), progress=False)


def _words(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


class FilterPanel:
    """ipywidgets controls for a `FigureFilter`, a count label, a preview grid and a materialise button."""

    def __init__(self, options: FilterOptions, initial: FigureFilter | None = None, subset_name: str = "") -> None:
        start = initial or FigureFilter()
        self._options = options
        years = (start.year_from or options.year_min, start.year_to or options.year_max)
        low, high = min(options.year_min, years[0]), max(options.year_max, years[1])
        self.license_groups = widgets.SelectMultiple(
            options=LICENSE_GROUPS, value=start.license_groups, description="licence", rows=3
        )
        self.years = widgets.IntRangeSlider(min=low, max=high, value=years, description="years")
        self.journals = widgets.SelectMultiple(
            options=sorted(set(options.journals) | set(start.journals)),
            value=start.journals,
            description="journals",
            rows=5,
        )
        self.article_types = widgets.SelectMultiple(
            options=sorted(set(options.article_types) | set(start.article_types)),
            value=start.article_types,
            description="types",
            rows=4,
        )
        self.concepts = widgets.SelectMultiple(
            options=sorted(set(options.concepts) | set(start.concepts)),
            value=start.concepts,
            description="concepts",
            rows=4,
        )
        self.panel_types = widgets.SelectMultiple(
            options=sorted(set(options.panel_types) | set(start.panel_types)),
            value=start.panel_types,
            description="panels",
            rows=2,
        )
        self.mesh_terms = widgets.Text(
            value=", ".join(start.mesh_terms), description="MeSH", placeholder="comma separated"
        )
        self.keywords = widgets.Text(
            value=", ".join(start.keywords), description="keywords", placeholder="comma separated"
        )
        self.min_width = widgets.BoundedIntText(value=start.min_width or 0, min=0, max=100_000, description="min width")
        self.min_height = widgets.BoundedIntText(
            value=start.min_height or 0, min=0, max=100_000, description="min height"
        )
        inline = next(label for label, value in _INLINE_CHOICES.items() if value is start.has_inline_references)
        self.inline = widgets.Dropdown(options=tuple(_INLINE_CHOICES), value=inline, description="in-line refs")
        self.exclude_duplicates = widgets.Checkbox(value=start.exclude_duplicates, description="exclude duplicates")
        self.text = widgets.Text(
            value=start.text, description="search", placeholder="words in captions, titles", continuous_update=True
        )
        self.where = widgets.Textarea(
            value=start.where,
            description="SQL where",
            continuous_update=False,
            placeholder="advanced: e.g. width * height > 1e6",
        )
        self.count_label = widgets.HTML(value="")
        self.message = widgets.HTML(value="")
        self.preview = widgets.GridBox(layout=widgets.Layout(grid_template_columns="repeat(4, 25%)"))
        self.subset_name = widgets.Text(value=subset_name, description="subset name")
        self.force = widgets.Checkbox(value=False, description="replace existing")
        self.materialise_button = widgets.Button(description="Materialise subset", button_style="primary")
        self.controls = (
            self.license_groups,
            self.years,
            self.journals,
            self.article_types,
            self.concepts,
            self.panel_types,
            self.mesh_terms,
            self.keywords,
            self.min_width,
            self.min_height,
            self.inline,
            self.exclude_duplicates,
            self.text,
            self.where,
        )
        self.widget = widgets.VBox(
            [
                widgets.HBox([widgets.VBox(list(self.controls[:6])), widgets.VBox(list(self.controls[6:]))]),
                self.count_label,
                self.message,
                self.preview,
                widgets.HBox([self.subset_name, self.force, self.materialise_button]),
            ]
        )

    def selection(self) -> FigureFilter:
        """The filter the controls describe (ValueError on a bad value, e.g. a refused SQL clause)."""
        low, high = self.years.value
        full = (low <= self.years.min, high >= self.years.max)
        return FigureFilter(
            license_groups=tuple(self.license_groups.value),
            year_from=None if full[0] else low,
            year_to=None if full[1] else high,
            journals=tuple(self.journals.value),
            article_types=tuple(self.article_types.value),
            concepts=tuple(self.concepts.value),
            panel_types=tuple(self.panel_types.value),
            mesh_terms=_words(self.mesh_terms.value),
            keywords=_words(self.keywords.value),
            min_width=self.min_width.value or None,
            min_height=self.min_height.value or None,
            has_inline_references=_INLINE_CHOICES[self.inline.value],
            exclude_duplicates=self.exclude_duplicates.value,
            text=self.text.value,
            where=self.where.value,
        )

    def on_change(self, callback: Callable[[], None]) -> None:
        for control in self.controls:
            control.observe(lambda _change: callback(), names="value")

    def on_materialise(self, callback: Callable[[], None]) -> None:
        self.materialise_button.on_click(lambda _button: callback())

    def show_count(self, figures: int) -> None:
        self.count_label.value = f"<b>{figures:,}</b> figures selected"

    def show_message(self, text: str, error: bool = False) -> None:
        colour = "#b00020" if error else "#1b5e20"
        self.message.value = f'<span style="color:{colour}">{html.escape(text)}</span>' if text else ""

    def show_preview(self, items: list[PreviewItem]) -> None:
        tiles = []
        for item in items:
            caption = item.caption if len(item.caption) <= 200 else item.caption[:197] + "..."
            link = (
                f'<a href="{html.escape(item.url)}" target="_blank">{html.escape(item.pmcid)}</a> '
                f"· {html.escape(item.license_group)}<br><small>{html.escape(caption)}</small>"
            )
            image = widgets.Image(value=item.thumbnail, format="jpeg", layout=widgets.Layout(max_width="128px"))
            tiles.append(widgets.VBox([image, widgets.HTML(value=link)]))
        self.preview.children = tiles


class FilterLoop:
    """Feeds the panel: each change recounts and re-previews; the button materialises the subset."""

    def __init__(self, panel: FilterPanel, store: CatalogStore, preview_size: int = 8) -> None:
        self.panel = panel
        self.store = store
        self.preview_size = preview_size
        self.last_result: SubsetResult | None = None
        panel.on_change(self.update)
        panel.on_materialise(self.materialise)
        self.update()

    def update(self) -> None:
        try:
            selection = self.panel.selection()
            self.panel.show_count(self.store.count(selection))
            self.panel.show_preview(self.store.preview(selection, self.preview_size))
            self.panel.show_message("")
        except (ValueError, TimeoutError) as error:
            self.panel.count_label.value = "<i>no count until the filter is fixed</i>"
            self.panel.show_message(str(error), error=True)

    def materialise(self) -> None:
        name = self.panel.subset_name.value.strip()
        if not name:
            self.panel.show_message("give the subset a name first", error=True)
            return
        try:
            self.last_result = self.store.materialise(name, self.panel.selection(), self.panel.force.value)
            self.panel.show_message(self.last_result.describe())
        except (ValueError, OSError, TimeoutError) as error:
            self.panel.show_message(str(error), error=True)


def filter_panel(
    catalog: Catalog, initial: FigureFilter | None = None, subset_name: str = "", preview_size: int = 8
) -> FilterLoop:
    """Store + panel + loop over an open catalog; display `loop.panel.widget`."""
    store = CatalogStore(catalog)
    panel = FilterPanel(store.options(), initial, subset_name)
    return FilterLoop(panel, store, preview_size)


__all__ = ["CatalogStore", "FilterLoop", "FilterOptions", "FilterPanel", "PreviewItem", "filter_panel"]
