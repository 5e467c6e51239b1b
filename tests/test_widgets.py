"""The filter panel driven as Python objects: set control values, click the button, read count and preview."""

from __future__ import annotations

import io

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
    keys = [row["key"] for row in catalog.preview(expected, 6)]
    assert len(tiles) == len(keys)
    for tile, key in zip(tiles, keys, strict=True):
        image, caption = tile.children
        assert Image.open(io.BytesIO(image.value)).size[0] <= 128
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
    assert "name first" in panel.message.value and loop.last_result is None
    panel.subset_name.value = "from-widget"
    panel.materialise_button.click()
    result = loop.last_result
    assert result is not None and result.samples == catalog.count(FigureFilter(license_groups=("commercial",)))
    assert (catalog.workspace.subsets / "from-widget" / "manifest.json").exists()
    assert "from-widget" in panel.message.value
    panel.license_groups.value = ("other",)
    panel.materialise_button.click()  # a different subset under the same name: refused, told why
    assert "--force" in panel.message.value
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

    panel = FilterPanel(CatalogStore(catalog).options())
    FilterLoop(panel, FakeStore())
    assert _count(panel) == 42 and panel.preview.children == ()
