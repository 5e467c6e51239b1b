"""The BM25 list of a search: one adapter over the catalog's text search, so its engine can be swapped in one place."""

from __future__ import annotations

from workbench.catalog import Catalog, FigureFilter


def search_text(catalog: Catalog, query: str, k: int, selection: FigureFilter | None = None) -> list[tuple[str, float]]:
    """The `k` best BM25 matches of `query` over captions, in-line references and titles among `selection`."""
    if not query.strip() or not catalog.has_search_index:
        return []
    return [(hit.key, hit.score) for hit in catalog.search(query, k, selection, mode="any")]
