"""The DuckDB catalog of a workspace: materialised tables, filters, full-text search, subsets, statistics.

    from workbench.catalog import FigureFilter, open_catalog, materialise_subset, SubsetSpec
    with open_catalog("workspace/demo") as catalog:
        catalog.count(FigureFilter(license_groups=("commercial",), year_from=2015))
        catalog.search("fluorescence microscopy", 10)
        materialise_subset(catalog, SubsetSpec("com", FigureFilter(license_groups=("commercial",))))

Statistics plots live in `workbench.catalog.stats`, the notebook's filter panel in `workbench.catalog.widgets`.
"""

from workbench.catalog.db import Catalog, CatalogBusy, CatalogMissing, RefreshReport, open_catalog, refresh_catalog
from workbench.catalog.filters import CompiledFilter, FigureFilter, compile_filter
from workbench.catalog.fts import SearchHit
from workbench.catalog.sandbox import WhereRefused, canonical_where
from workbench.catalog.subset import (
    LicenceViolation,
    SubsetDiffers,
    SubsetError,
    SubsetExists,
    SubsetResult,
    SubsetSpec,
    materialise_subset,
    reproduce_subset,
)

__all__ = [
    "Catalog",
    "CatalogBusy",
    "CatalogMissing",
    "CompiledFilter",
    "FigureFilter",
    "LicenceViolation",
    "RefreshReport",
    "SearchHit",
    "SubsetDiffers",
    "SubsetError",
    "SubsetExists",
    "SubsetResult",
    "SubsetSpec",
    "WhereRefused",
    "canonical_where",
    "compile_filter",
    "materialise_subset",
    "open_catalog",
    "refresh_catalog",
    "reproduce_subset",
]
