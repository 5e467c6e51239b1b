"""`CatalogStore`: the filter panel's only access to data (counts, ranked previews with thumbnails, statistics,
subsets).

It reads through its own read-only connection, so the notebook's cells and the panel never share one: JupyterLab
may deliver widget events on a kernel subshell (another thread) while cells run, and the notebook may close its
catalog (Run All's last cell). Questions are serialised by a lock; a closed connection is reopened as it is.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import duckdb
import plotly.graph_objects as go
from PIL import Image

from workbench.catalog import sql
from workbench.catalog.db import Catalog, open_catalog
from workbench.catalog.filters import FigureFilter
from workbench.catalog.stats import all_figures, count_by
from workbench.catalog.subset import SubsetResult, SubsetSpec, materialise_subset

PMC_ARTICLE_URL = "https://pmc.ncbi.nlm.nih.gov/articles/{pmcid}/"
TILE_BACKGROUND = (236, 236, 236)  # light grey around letterboxed thumbnails, so every tile reads as a square
T = TypeVar("T")


@dataclass(frozen=True)
class PreviewItem:
    key: str
    pmcid: str
    caption: str
    license_group: str
    url: str
    thumbnail: bytes  # JPEG, `thumbnail_px` square (the image fitted and centred), so tiles line up
    score: float | None = None  # BM25 score when the selection has a text query
    matched: tuple[str, ...] = ()  # where the text query matched: caption, in-line reference, title


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
    """Answers the panel's questions from a catalog; reopens it (read-only, as it is) when it was closed."""

    def __init__(self, catalog: Catalog, thumbnail_px: int = 128) -> None:
        self._lock = threading.RLock()
        self._catalog = open_catalog(catalog.workspace, refresh=False, timeout_s=catalog.timeout_s)
        self.thumbnail_px = thumbnail_px

    @property
    def catalog(self) -> Catalog:
        """The store's own open catalog (reopened if it was closed)."""
        with self._lock:
            if self._catalog.closed:
                self._reopen()
            return self._catalog

    def _reopen(self) -> None:
        old = self._catalog
        self._catalog = open_catalog(old.workspace, refresh=False, timeout_s=old.timeout_s)

    def _run(self, question: Callable[[Catalog], T]) -> T:
        with self._lock:
            try:
                return question(self.catalog)
            except duckdb.ConnectionException:  # closed underneath us: reopen once and ask again
                self._reopen()
                return question(self._catalog)

    def close(self) -> None:
        with self._lock:
            self._catalog.close()

    def rows(self, query: str, params: list[Any] | None = None) -> list[tuple]:
        """All rows of a read-only query over the catalog (e.g. the facts the embedding map shows per point)."""
        return self._run(lambda catalog: catalog.execute(query, params or ()).fetchall())

    def options(self, top: int = 200) -> FilterOptions:
        def values(catalog: Catalog, column: str) -> tuple[str, ...]:
            return tuple(sorted(str(v) for v, _ in count_by(catalog, column, None, top) if v is not None))

        def ask(catalog: Catalog) -> FilterOptions:
            years = [int(y) for y in values(catalog, "article_year")] or [2000]
            return FilterOptions(
                values(catalog, "article_journal"),
                values(catalog, "article_type"),
                values(catalog, "concepts"),
                values(catalog, "panel_type"),
                min(years),
                max(years),
            )

        return self._run(ask)

    def count(self, selection: FigureFilter) -> int:
        return self._run(lambda catalog: catalog.count(selection))

    def preview(self, selection: FigureFilter, limit: int) -> list[PreviewItem]:
        """The first `limit` selected figures; with a text query, the best BM25 matches first, with the reason."""
        if selection.text:
            return self.search(selection.text, limit, selection, selection.text_mode)
        return [self._item(row) for row in self._run(lambda catalog: catalog.preview(selection, limit))]

    def search(
        self, text: str, limit: int, selection: FigureFilter | None = None, mode: str = "any"
    ) -> list[PreviewItem]:
        """Ranked matches of `text` within `selection`, as preview items that say where the text matched."""
        base = replace(selection or FigureFilter(), text="")

        def ask(catalog: Catalog) -> tuple[list[Any], dict[str, dict[str, Any]]]:
            hits = catalog.search(text, limit, base, mode)
            found = catalog.rows_by_key([hit.key for hit in hits], sql.PREVIEW_COLUMNS)
            return hits, {row["key"]: row for row in found}

        hits, rows = self._run(ask)
        return [
            replace(self._item(rows[hit.key]), score=hit.score, matched=hit.matched) for hit in hits if hit.key in rows
        ]

    def statistics(self, selection: FigureFilter) -> dict[str, go.Figure]:
        return self._run(lambda catalog: all_figures(catalog, selection))

    def materialise(self, name: str, selection: FigureFilter, force: bool = False) -> SubsetResult:
        spec = SubsetSpec(name, selection, force=force)
        return self._run(lambda catalog: materialise_subset(catalog, spec, progress=False))

    def _item(self, row: dict[str, Any]) -> PreviewItem:
        return PreviewItem(
            row["key"],
            row["pmcid"],
            row["caption"] or "",
            row["license_group"],
            PMC_ARTICLE_URL.format(pmcid=row["pmcid"]),
            self._thumbnail(row),
        )

    def _thumbnail(self, row: dict[str, Any]) -> bytes:
        path = self._catalog.workspace.root / row["shard"]
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                data = os.pread(fd, row["jpg_size"], row["jpg_offset"])
            finally:
                os.close(fd)
            image = Image.open(io.BytesIO(data)).convert("RGB")
            scale = min(self.thumbnail_px / image.width, self.thumbnail_px / image.height)
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            image = image.resize(size, Image.Resampling.LANCZOS)  # small images grow too: every tile looks alike
        except (OSError, ValueError, ZeroDivisionError):
            image = None  # a missing shard shows an empty tile; the subset step reports it properly
        tile = Image.new("RGB", (self.thumbnail_px, self.thumbnail_px), TILE_BACKGROUND)
        if image is not None:
            tile.paste(image, ((self.thumbnail_px - image.width) // 2, (self.thumbnail_px - image.height) // 2))
        buffer = io.BytesIO()
        tile.save(buffer, format="JPEG", quality=80)
        return buffer.getvalue()


__all__ = ["PMC_ARTICLE_URL", "CatalogStore", "FilterOptions", "PreviewItem"]
