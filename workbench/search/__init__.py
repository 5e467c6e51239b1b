"""Search over a workspace: faiss vector indexes of an embedding set, BM25 text, RRF fusion, filters.

from workbench.search.index import build_index, open_index
from workbench.search.query import SearchEngine, SearchRequest
build_index(workspace, "builtin")
with SearchEngine.open(workspace, "builtin") as engine:
    engine.search(SearchRequest(text="fluorescence", k=10))
"""
