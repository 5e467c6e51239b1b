"""The filter panel of notebook 03, in three separate parts (superintendent style):

- `CatalogStore` (`workbench.catalog.store`) answers questions from the catalog (counts, ranked previews with
  thumbnails, statistics, subsets) through its own connection, so the notebook closing its catalog harms nothing;
- `FilterPanel` is only ipywidgets: controls, a live count, a preview grid, statistics, a button; it knows no catalog;
- `FilterLoop` connects them: a control changes -> filter -> store -> panel (tiles and plots: `catalog.views`).

Build all three with `filter_panel(catalog, initial_filter)`; display `loop.panel.widget` (and `loop.panel.stats`
where the statistics should appear).
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Callable

import ipywidgets as widgets
import plotly.graph_objects as go

from workbench.catalog.db import Catalog
from workbench.catalog.filters import FigureFilter
from workbench.catalog.store import PMC_ARTICLE_URL, CatalogStore, FilterOptions, PreviewItem
from workbench.catalog.subset import SubsetExists, SubsetResult
from workbench.catalog.views import ERROR, NOTE, OK, coloured, plot_output, preview_grid, preview_tiles
from workbench.licenses import LICENSE_GROUPS

_INLINE_CHOICES = {"any": None, "cited in the text": True, "never cited": False}
_TEXT_MODES = {"any word": "any", "all words": "all", "exact phrase": "phrase"}
_CONTROLLED = (
    "license_groups",
    "year_from",
    "year_to",
    "journals",
    "article_types",
    "concepts",
    "panel_types",
    "mesh_terms",
    "keywords",
    "min_width",
    "min_height",
    "has_inline_references",
    "exclude_duplicates",
    "text",
    "text_mode",
    "where",
)


def _words(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


class FilterPanel:
    """ipywidgets controls for a `FigureFilter`, a count, a preview grid, statistics and a materialise button.

    Fields of the initial filter that have no control (dates, maximum sizes, ...) are kept and shown.
    """

    def __init__(self, options: FilterOptions, initial: FigureFilter | None = None, subset_name: str = "") -> None:
        start = initial or FigureFilter()
        self._initial = start
        self._options = options
        years = (start.year_from or options.year_min, start.year_to or options.year_max)
        low, high = min(options.year_min, years[0]), max(options.year_max, years[1])
        self.license_groups = widgets.SelectMultiple(
            options=LICENSE_GROUPS, value=start.license_groups, description="licence", rows=3
        )
        self.years = widgets.IntRangeSlider(min=low, max=high, value=years, description="years", readout=False)
        self.year_readout = widgets.HTML(layout=widgets.Layout(min_width="110px"))
        self.years.observe(lambda _change: self._show_years(), names="value")
        self._show_years()

        def choices(offered: tuple[str, ...], chosen: tuple[str, ...], label: str, rows: int) -> widgets.SelectMultiple:
            return widgets.SelectMultiple(
                options=sorted(set(offered) | set(chosen)), value=chosen, description=label, rows=rows
            )

        self.journals = choices(options.journals, start.journals, "journals", 5)
        self.article_types = choices(options.article_types, start.article_types, "types", 4)
        self.concepts = choices(options.concepts, start.concepts, "concepts", 4)
        self.panel_types = choices(options.panel_types, start.panel_types, "panels", 2)
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
        mode = next(label for label, value in _TEXT_MODES.items() if value == start.text_mode)
        self.text_mode = widgets.Dropdown(options=tuple(_TEXT_MODES), value=mode, description="match")
        self.where = widgets.Textarea(
            value=start.where,
            description="SQL where",
            continuous_update=False,
            placeholder="advanced: e.g. width * height > 1e6",
        )
        self.count_label = widgets.HTML(value="")
        self.message = widgets.HTML(value="")
        self.kept_note = widgets.HTML(value=self._kept_fields())
        self.preview_note = widgets.HTML(value="")
        self.preview = widgets.GridBox(layout=widgets.Layout(grid_template_columns="repeat(4, 25%)"))
        self.subset_name = widgets.Text(
            value=subset_name, description="subset name", style={"description_width": "initial"}
        )
        self.force = widgets.Checkbox(value=False, description="replace existing")
        self.materialise_button = widgets.Button(description="Materialise subset", button_style="primary")
        self.subset_message = widgets.HTML(value="")
        self.stats_note = widgets.HTML(value="")
        self.stats_plots = widgets.Output()
        self.stats = widgets.VBox([self.stats_note, self.stats_plots])
        for name in (  # stable CSS classes (wb-license-groups, wb-count, ...) for people's styles and browser tests
            "license_groups",
            "years",
            "year_readout",
            "text",
            "text_mode",
            "where",
            "count_label",
            "message",
            "preview_note",
            "preview",
            "subset_name",
            "force",
            "materialise_button",
            "subset_message",
            "stats",
        ):
            getattr(self, name).add_class("wb-" + name.replace("_", "-"))
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
            self.text_mode,
            self.where,
        )
        left = [self.license_groups, widgets.HBox([self.years, self.year_readout]), *self.controls[2:6]]
        self.widget = widgets.VBox(
            [
                widgets.HBox([widgets.VBox(left), widgets.VBox(list(self.controls[6:]))]),
                self.kept_note,
                self.count_label,
                self.message,
                self.preview_note,
                self.preview,
                widgets.HBox([self.subset_name, self.force, self.materialise_button]),
                self.subset_message,
            ]
        )

    def _show_years(self) -> None:
        low, high = self.years.value
        self.year_readout.value = f"{low} – {high}"

    def _kept_fields(self) -> str:
        kept = {
            name: value
            for name, value in self._initial.to_dict().items()
            if name not in _CONTROLLED and value != FigureFilter().to_dict().get(name)
        }
        if not kept:
            return ""
        text = FigureFilter.from_dict(kept).describe()  # long key lists (a map selection) are summarised
        return coloured(f"also applied (no control here): {text}", NOTE)

    def replace_kept(self, **changes: object) -> None:
        """Change fields without a control (e.g. `keys` chosen on the embedding map); then update the loop."""
        self._initial = dataclasses.replace(self._initial, **changes)
        self.kept_note.value = self._kept_fields()

    def selection(self) -> FigureFilter:
        """The filter the controls describe (ValueError on a bad value, e.g. a refused SQL clause).

        Fields without a control keep the initial filter's values.
        """
        low, high = self.years.value
        full = (low <= self.years.min, high >= self.years.max)
        return dataclasses.replace(
            self._initial,
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
            text_mode=_TEXT_MODES[self.text_mode.value],
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
        self.message.value = coloured(text, ERROR if error else OK)

    def show_subset_message(self, text: str, error: bool = False) -> None:
        """A message next to the materialise button (where the person who pressed it is looking)."""
        self.subset_message.value = coloured(text, ERROR if error else OK)

    def _replace_tiles(self, tiles: list[widgets.Widget]) -> None:
        """New tiles in; the old ones closed, so the browser does not keep every thumbnail ever shown."""
        old, self.preview.children = self.preview.children, tuple(tiles)
        for tile in old:
            for part in tile.children:
                part.close()
            tile.close()

    def show_preview(self, items: list[PreviewItem], ranked: bool = False) -> None:
        self._replace_tiles(preview_tiles(items))
        if not items:
            note = "No figure matches this filter: widen it (fewer licence groups, years, words or conditions)."
        elif ranked:
            note = f"Best {len(items)} matches of the text search, best first (BM25):"
        else:
            note = f"First {len(items)} selected figures (by key):"
        self.preview_note.value = coloured(note, NOTE)

    def show_invalid(self, reason: str) -> None:
        """A filter that cannot run: say why, and clear what belonged to the previous filter."""
        self.count_label.value = "<i>no count until the filter is fixed</i>"
        self.show_message(reason, error=True)
        self._replace_tiles([])
        self.preview_note.value = coloured("No preview until the filter is fixed.", NOTE)
        self.stats_plots.outputs = ()
        self.stats_note.value = coloured("No statistics until the filter is fixed.", NOTE)

    def show_stats(self, figures: dict[str, go.Figure], selected: int) -> None:
        if not selected:
            self.stats_plots.outputs = ()
            self.stats_note.value = coloured("No statistics: nothing is selected.", NOTE)
            return
        self.stats_note.value = coloured(f"Statistics of the {selected:,} figures selected in the panel:", NOTE)
        self.stats_plots.outputs = tuple(plot_output(figure) for figure in figures.values())


class FilterLoop:
    """Feeds the panel: each change recounts, re-previews and redraws the statistics; the button writes a subset."""

    def __init__(self, panel: FilterPanel, store: CatalogStore, preview_size: int = 8, statistics: bool = True) -> None:
        self.panel = panel
        self.store = store
        self.preview_size = preview_size
        self.statistics = statistics
        self.stats_delay_s = 0.3
        self._pending: asyncio.TimerHandle | None = None
        self._generation = 0
        self._lock = threading.RLock()  # widget events may arrive on several threads (kernel subshells)
        self.last_result: SubsetResult | None = None
        panel.on_change(self.update)
        panel.on_materialise(self.materialise)
        self.update()

    def update(self) -> None:
        with self._lock:
            self._update()

    def _update(self) -> None:
        try:
            selection = self.panel.selection()
            selected = self.store.count(selection)
            self.panel.show_count(selected)
            self.panel.show_message("")
            items = self.store.preview(selection, self.preview_size) if selected else []
            self.panel.show_preview(items, ranked=bool(selection.text))
            if self.statistics:
                self._schedule_statistics(selection, selected)
        except (ValueError, TimeoutError) as error:
            self._cancel_statistics()
            self.panel.show_invalid(str(error))
        except Exception as error:  # shown in the panel, not lost in the Log Console behind stale results
            self._cancel_statistics()
            self.panel.show_invalid(f"the panel could not update ({type(error).__name__}: {error})")

    def _schedule_statistics(self, selection: FigureFilter, selected: int) -> None:
        """Redraw the plots once the controls rest for `stats_delay_s` (in a kernel); at once without an event loop.

        Plots cost ~0.2 s; while someone types, only the count and preview follow each keystroke.
        """
        self._cancel_statistics()
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            self._draw(selection, selected)
            return
        self._pending = running.call_later(
            self.stats_delay_s, self._draw_statistics, selection, selected, self._generation
        )

    def _cancel_statistics(self) -> None:
        self._generation += 1
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None

    def _draw_statistics(self, selection: FigureFilter, selected: int, generation: int) -> None:
        with self._lock:
            if generation != self._generation:
                return  # a later change is waiting to draw (its timer may sit on another thread's loop)
            self._pending = None
            self._draw(selection, selected)

    def _draw(self, selection: FigureFilter, selected: int) -> None:
        try:
            self.panel.show_stats(self.store.statistics(selection) if selected else {}, selected)
        except Exception as error:  # as above: say it where the plots were
            self.panel.show_invalid(f"the statistics could not be drawn ({type(error).__name__}: {error})")

    def materialise(self) -> None:
        with self._lock:
            self._materialise()

    def _materialise(self) -> None:
        panel = self.panel
        name = panel.subset_name.value.strip()
        if not name:
            panel.show_subset_message("give the subset a name first", error=True)
            return
        panel.materialise_button.disabled = True
        panel.show_subset_message(f"writing subset {name!r} ...")
        try:
            self.last_result = self.store.materialise(name, panel.selection(), panel.force.value)
            panel.show_subset_message(self.last_result.describe())
        except SubsetExists:
            panel.show_subset_message(
                f"a different subset is already stored as {name!r}: choose another name, or tick "
                f"'replace existing' to replace it",
                error=True,
            )
        except (ValueError, OSError, TimeoutError) as error:
            panel.show_subset_message(str(error), error=True)
        finally:
            panel.materialise_button.disabled = False


def filter_panel(
    catalog: Catalog,
    initial: FigureFilter | None = None,
    subset_name: str = "",
    preview_size: int = 8,
    statistics: bool = True,
) -> FilterLoop:
    """Store + panel + loop over an open catalog; display `loop.panel.widget` (and `loop.panel.stats`)."""
    store = CatalogStore(catalog)
    panel = FilterPanel(store.options(), initial, subset_name)
    return FilterLoop(panel, store, preview_size, statistics)


__all__ = [
    "PMC_ARTICLE_URL",
    "CatalogStore",
    "FilterLoop",
    "FilterOptions",
    "FilterPanel",
    "PreviewItem",
    "filter_panel",
    "preview_grid",
    "preview_tiles",
]
