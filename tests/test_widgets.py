"""The filter panel driven as Python objects: set control values, click the button, read count and preview."""

from __future__ import annotations

import asyncio
import io
import threading

import pytest
from catalog_fixture import build_workspace
from PIL import Image

from workbench.catalog import FigureFilter, open_catalog, refresh_catalog
from workbench.catalog.widgets import PMC_ARTICLE_URL, CatalogStore, FilterLoop, FilterPanel, filter_panel


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    built = build_workspace(tmp_path_factory.mktemp("widgets") / "ws", articles=40, seed=51)
    refresh_catalog(built.workspace, progress=False)
    with open_catalog(built.workspace) as opened:
        yield opened


def _count(panel: FilterPanel) -> int:
    return int(panel.count_label.value.split("<b>")[1].split("</b>")[0].replace(",", ""))


def test_controls_update_count_and_preview(catalog):
    loop = filter_panel(catalog, preview_size=6)
    panel = loop.panel
    assert _count(panel) == catalog.count()
    panel.license_groups.value = ("commercial",)
    assert _count(panel) == catalog.count(FigureFilter(license_groups=("commercial",)))
    panel.years.value = (2010, 2018)
    expected = FigureFilter(license_groups=("commercial",), year_from=2010, year_to=2018)
    assert panel.selection() == expected
    assert _count(panel) == catalog.count(expected)
    for letter in "tumo":  # typing, one keystroke at a time
        panel.text.value += letter
    panel.text.value += "ur"
    expected = FigureFilter(license_groups=("commercial",), year_from=2010, year_to=2018, text="tumour")
    assert _count(panel) == catalog.count(expected) > 0
    tiles = panel.preview.children
    keys = [hit.key for hit in catalog.search("tumour", 6, expected)]  # with a text query: ranked by BM25
    assert len(tiles) == len(keys)
    for tile, key in zip(tiles, keys, strict=True):
        image, caption = tile.children
        assert Image.open(io.BytesIO(image.value)).size == (128, 128)  # square tiles: even heights
        pmcid = key.split("_")[0]
        assert PMC_ARTICLE_URL.format(pmcid=pmcid) in caption.value and "commercial" in caption.value


def test_every_control_reaches_the_filter(catalog):
    options = CatalogStore(catalog).options()
    panel = FilterPanel(options)
    panel.journals.value = (options.journals[0],)
    panel.article_types.value = (options.article_types[0],)
    panel.mesh_terms.value = "Humans, brain"
    panel.keywords.value = "MRI"
    panel.min_width.value = 40
    panel.min_height.value = 30
    panel.inline.value = "cited in the text"
    panel.exclude_duplicates.value = True
    panel.where.value = "caption_length > 20"
    assert panel.selection() == FigureFilter(
        journals=(options.journals[0],),
        article_types=(options.article_types[0],),
        mesh_terms=("Humans", "brain"),
        keywords=("MRI",),
        min_width=40,
        min_height=30,
        has_inline_references=True,
        exclude_duplicates=True,
        where="caption_length > 20",
    )


def test_initial_filter_is_shown_and_bad_sql_is_a_message(catalog):
    initial = FigureFilter(license_groups=("noncommercial",), has_inline_references=False)
    loop = filter_panel(catalog, initial)
    panel = loop.panel
    assert panel.selection() == initial
    assert _count(panel) == catalog.count(initial)
    panel.where.value = "1=1; DROP TABLE figures"
    assert "refused" in panel.message.value and "no count" in panel.count_label.value
    panel.where.value = "width > 0"
    assert panel.message.value == "" and _count(panel) == catalog.count(initial)


def test_button_materialises_the_subset(catalog):
    loop = filter_panel(catalog, FigureFilter(license_groups=("commercial",)), subset_name="")
    panel = loop.panel
    panel.materialise_button.click()
    assert "name first" in panel.subset_message.value and loop.last_result is None
    panel.subset_name.value = "from-widget"
    panel.materialise_button.click()
    result = loop.last_result
    assert result is not None and result.samples == catalog.count(FigureFilter(license_groups=("commercial",)))
    assert (catalog.workspace.subsets / "from-widget" / "manifest.json").exists()
    assert "from-widget" in panel.subset_message.value
    panel.license_groups.value = ("other",)
    panel.materialise_button.click()  # a different subset under the same name: refused, told why
    assert "replace existing" in panel.subset_message.value and "--force" not in panel.subset_message.value
    assert "#b00020" in panel.subset_message.value
    panel.force.value = True
    panel.materialise_button.click()
    assert set(loop.last_result.counts_by_license_group) == {"other"}


def test_loop_works_with_any_store(catalog):
    """The loop only needs count/preview/materialise: a fake store drives the same panel."""

    class FakeStore:
        def count(self, selection):
            return 42

        def preview(self, selection, limit):
            return []

        def statistics(self, selection):
            return {}

    panel = FilterPanel(CatalogStore(catalog).options())
    FilterLoop(panel, FakeStore())
    assert _count(panel) == 42 and panel.preview.children == ()


def test_panel_survives_the_notebook_closing_its_catalog(tmp_path):
    """Run All ends with the catalog closed: the panel reopens it and keeps counting (no 'Connection closed')."""
    built = build_workspace(tmp_path / "ws", articles=12, seed=53)
    refresh_catalog(built.workspace, progress=False)
    catalog = open_catalog(built.workspace)
    loop = filter_panel(catalog, preview_size=3)
    total = catalog.count()
    commercial = catalog.count(FigureFilter(license_groups=("commercial",)))
    catalog.close()
    loop.panel.license_groups.value = ("commercial",)
    assert _count(loop.panel) == commercial and loop.panel.message.value == ""
    loop.store.catalog.connection.close()  # closed underneath the store: reopened on the next question
    loop.panel.license_groups.value = ()
    assert _count(loop.panel) == total and loop.panel.message.value == ""
    loop.store.catalog.close()


def test_statistics_follow_the_panel(catalog):
    loop = filter_panel(catalog, preview_size=2)
    panel = loop.panel
    assert len(panel.stats_plots.outputs) == 8

    def licence_bars():
        for output in panel.stats_plots.outputs:
            figure = output["data"]["application/vnd.plotly.v1+json"]
            if "licence" in figure["layout"]["title"]["text"]:
                return set(figure["data"][0]["x"])
        raise AssertionError("no licence plot")

    assert len(licence_bars()) > 1
    panel.license_groups.value = ("noncommercial",)
    assert licence_bars() == {"noncommercial"}
    assert f"{_count(panel):,}" in panel.stats_note.value


def test_bad_filter_clears_preview_and_says_why_and_zero_matches_say_so(catalog):
    loop = filter_panel(catalog, preview_size=4)
    panel = loop.panel
    assert panel.preview.children and panel.stats_plots.outputs
    panel.where.value = "nosuch_column > 1"
    assert panel.preview.children == () and panel.stats_plots.outputs == ()
    assert "nosuch_column" in panel.message.value and "fixed" in panel.preview_note.value
    panel.where.value = "width < 0"
    assert _count(panel) == 0 and panel.preview.children == ()
    assert "No figure matches" in panel.preview_note.value and "nothing is selected" in panel.stats_note.value
    panel.where.value = ""
    assert panel.preview.children and panel.message.value == ""


def test_panel_keeps_fields_it_has_no_control_for(catalog):
    initial = FigureFilter(date_from="2012-01-01", max_width=500, max_height=400, license_groups=("commercial",))
    loop = filter_panel(catalog, initial)
    panel = loop.panel
    assert panel.selection() == initial
    panel.exclude_duplicates.value = True
    selection = panel.selection()
    assert (selection.date_from, selection.max_width, selection.max_height) == (initial.date_from, 500, 400)
    assert _count(panel) == catalog.count(selection)
    assert "date_from=2012-01-01" in panel.kept_note.value and "max_width=500" in panel.kept_note.value


def test_year_readout_is_whole(catalog):
    panel = filter_panel(catalog).panel
    panel.years.value = (2005, 2021)
    assert panel.years.readout is False and panel.year_readout.value == "2005 – 2021"


def test_text_search_preview_is_ranked_with_reasons(catalog):
    loop = filter_panel(catalog, preview_size=5)
    panel = loop.panel
    panel.text.value = "tumour cells"
    items = loop.store.preview(panel.selection(), 5)
    hits = catalog.search("tumour cells", 5)
    assert [item.key for item in items] == [hit.key for hit in hits]
    assert all(item.score is not None and item.matched for item in items)
    assert "best first" in panel.preview_note.value
    first_caption = panel.preview.children[0].children[1].value
    assert "matched in" in first_caption and "BM25" in first_caption
    panel.text_mode.value = "exact phrase"
    assert panel.selection().text_mode == "phrase"
    assert _count(panel) == catalog.count(FigureFilter(text="tumour cells", text_mode="phrase"))


def test_empty_mesh_chart_is_a_note(catalog):
    from workbench.catalog.stats import mesh_figure

    figure = mesh_figure(catalog, FigureFilter(where="len(article_mesh_terms) = 0"))
    assert not figure.data and "no MeSH terms" in figure.layout.annotations[0].text
    assert figure.layout.xaxis.visible is False


def test_statistics_wait_until_the_controls_rest_in_a_kernel(catalog):
    """Inside an event loop (a kernel), plots redraw once after a burst of changes; counts follow each change."""

    async def burst():
        loop = filter_panel(catalog, preview_size=1)
        panel = loop.panel
        loop.stats_delay_s = 0.2
        before = panel.stats_plots.outputs
        for group in ("commercial", "noncommercial", "other"):
            panel.license_groups.value = (group,)
            assert _count(panel) == catalog.count(FigureFilter(license_groups=(group,)))
        assert panel.stats_plots.outputs == before  # not redrawn per keystroke
        await asyncio.sleep(0.5)
        return panel

    panel = asyncio.run(burst())
    figure = panel.stats_plots.outputs[0]["data"]["application/vnd.plotly.v1+json"]
    assert set(figure["data"][0]["x"]) == {"other"}


def test_store_answers_from_several_threads_without_mixing_results(catalog):
    """JupyterLab may deliver widget events on kernel subshells (threads): questions must not share a cursor."""
    store = CatalogStore(catalog)
    selections = [FigureFilter(license_groups=(group,)) for group in ("commercial", "noncommercial", "other")]
    expected = [catalog.count(selection) for selection in selections]
    failures = []

    def ask(index: int) -> None:
        try:
            for _ in range(15):
                assert store.count(selections[index]) == expected[index]
                store.statistics(selections[index])
        except Exception as error:  # collected, so the main thread sees it
            failures.append(repr(error))

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert store.catalog is not catalog  # its own connection: the notebook's cells never share it
    store.close()


def test_replaced_preview_tiles_are_closed(catalog):
    panel = filter_panel(catalog, preview_size=3).panel
    old = panel.preview.children
    assert old and all(tile.comm is not None for tile in old)
    panel.license_groups.value = ("other",)
    assert panel.preview.children and all(tile.comm is None for tile in old)  # closed: no leak in the browser
