"""The notebook's search widget: a query box, an image upload, a licence filter and a grid of ranked results."""

from __future__ import annotations

import io
from collections.abc import Sequence

import ipywidgets as widgets
from PIL import Image

from workbench.catalog import FigureFilter
from workbench.catalog.store import PMC_ARTICLE_URL, TILE_BACKGROUND, PreviewItem
from workbench.catalog.views import ERROR, NOTE, coloured, preview_grid
from workbench.errors import UserError
from workbench.search.query import SearchEngine, SearchRequest, SearchResult
from workbench.serve.files import figure_bytes

LICENCE_CHOICES = (("any licence", ""), ("commercial", "commercial"), ("noncommercial", "noncommercial"))


def thumbnail(engine: SearchEngine, result: SearchResult, px: int = 128) -> bytes:
    """A `px` square JPEG of the result's image, letterboxed on the catalog's tile background."""
    data = figure_bytes(engine.workspace, result.shard, result.jpg_offset, result.jpg_size)
    with Image.open(io.BytesIO(data)) as image:
        image.draft("RGB", (px, px))
        image = image.convert("RGB")
        scale = min(px / image.width, px / image.height)
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
        tile = Image.new("RGB", (px, px), TILE_BACKGROUND)
        tile.paste(image, ((px - image.width) // 2, (px - image.height) // 2))
    out = io.BytesIO()
    tile.save(out, "JPEG", quality=85)
    return out.getvalue()


def result_items(engine: SearchEngine, results: Sequence[SearchResult], px: int = 128) -> list[PreviewItem]:
    """Preview tiles of ranked results; each caption starts with the lists that found it and their ranks."""
    items = []
    for result in results:
        ranks = ", ".join(f"{name} #{rank}" for name, rank in sorted(result.ranks.items(), key=lambda kv: kv[1]))
        items.append(
            PreviewItem(
                key=result.key,
                pmcid=result.pmcid or "",
                caption=f"[{ranks}] {result.caption or ''}",
                license_group=result.license_group or "",
                url=PMC_ARTICLE_URL.format(pmcid=result.pmcid),
                thumbnail=thumbnail(engine, result, px),
            )
        )
    return items


def search_widget(engine: SearchEngine, text: str = "", k: int = 12, license_group: str = "") -> widgets.VBox:
    """Type a query and/or upload an image, choose a licence group, press Search: the fused results appear."""
    query = widgets.Text(value=text, placeholder="describe the figure you look for", layout={"width": "28rem"})
    upload = widgets.FileUpload(accept="image/*", multiple=False, description="image")
    licence = widgets.Dropdown(options=LICENCE_CHOICES, value=license_group, layout={"width": "12rem"})
    count = widgets.BoundedIntText(value=k, min=1, max=200, description="k", layout={"width": "8rem"})
    button = widgets.Button(description="Search", button_style="primary")
    status = widgets.HTML()
    grid = widgets.VBox()

    def run(_: object = None) -> None:
        image = bytes(upload.value[0]["content"]) if upload.value else None
        selection = FigureFilter(license_groups=(licence.value,) if licence.value else ())
        try:
            response = engine.search(SearchRequest(text=query.value, image=image, k=count.value, filter=selection))
        except UserError as error:
            status.value = coloured(str(error), ERROR)
            return
        lists = ", ".join(f"{name} {n}" for name, n in response.lists.items())
        status.value = coloured(
            f"{len(response.results)} results in {response.timings_ms['total']:.0f} ms (candidates: {lists})", NOTE
        )
        grid.children = [preview_grid(result_items(engine, response.results), "nothing found")]

    button.on_click(run)
    controls = widgets.HBox([query, upload, licence, count, button])
    if text:
        run()
    return widgets.VBox([controls, status, grid], layout={"width": "100%"}, _dom_classes=["wb-search"])
