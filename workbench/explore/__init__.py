"""Exploring the embedding map in the notebook (04_explore), in three parts like the filter panel:

- `ExploreStore` (`workbench.explore.data`): points joined to the catalog, clusters, embeddings, thumbnails;
- `MapView` (`workbench.explore.widget`): only widgets (a plotly FigureWidget of Scattergl traces, hover card);
- `MapLoop` (`workbench.explore.loop`): selection -> `FigureFilter(keys=...)` in the filter panel, hover, neighbours.

Build them with `explore_map(catalog, map_name, ...)`.
"""

from workbench.explore.data import ExploreStore, MapPoints, current_clustering
from workbench.explore.loop import MapLoop, MapTimings, cluster_galleries, explore_map, save_map_html
from workbench.explore.widget import MapView, map_figure

__all__ = [
    "ExploreStore",
    "MapLoop",
    "MapPoints",
    "MapTimings",
    "MapView",
    "cluster_galleries",
    "current_clustering",
    "explore_map",
    "map_figure",
    "save_map_html",
]
