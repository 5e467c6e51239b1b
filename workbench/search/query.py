"""The one query API: text, image or both -> ranked lists (vectors and BM25), fused by RRF, filtered, described.

Lists: `images` (the text through the model's text tower against the image vectors), `captions` (the same against
the caption vectors), `bm25` (the catalog's BM25 over captions, in-line references and titles), `articles` (BM25
over full article text, WS/indexes/articles: the best articles' figures, article by article, each article's figures
in figure order), `similar_images` and `similar_captions` (an uploaded image through the image tower against
image and caption vectors; the latter only when asked for). A filter is applied without losing recall: a small
selection is searched exactly row by row (pre-filter); a large one by over-fetching until `candidates` selected rows
are found or the whole index was searched; the text lists take ranked matches in growing batches until `candidates`
survive.
"""

from __future__ import annotations

import contextlib
import io
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from workbench.catalog import Catalog, FigureFilter, open_catalog, refresh_catalog
from workbench.embed.models import Embedder, load_embedder
from workbench.embed.spec import parse_model_spec
from workbench.errors import UserError
from workbench.search import sql
from workbench.search.articles import ArticleIndex, ArticleIndexMissing, figure_order, has_article_index
from workbench.search.fusion import rrf
from workbench.search.index import VectorIndex, open_index
from workbench.search.text import search_text
from workbench.workspace import Workspace


class NotAnImage(UserError):
    """An uploaded file that does not decode as an image."""


LISTS = ("images", "captions", "bm25", "articles", "similar_images", "similar_captions")
# An image's own caption list is opt-in: a query image then comes back first rather than behind figures whose
# captions happen to lie near it.
DEFAULT_LISTS = ("images", "captions", "bm25", "articles", "similar_images")
ARTICLES_FIRST_BATCH = 100  # articles ranked before their figures are looked up; then 8x more per round
ARTICLES_GROWTH = 8


@dataclass(frozen=True)
class SearchRequest:
    """One query. `image` holds encoded image bytes (JPEG, PNG, …); `lists` limits the lists used."""

    text: str = ""
    image: bytes | None = None
    k: int = 10
    filter: FigureFilter = field(default_factory=FigureFilter)
    rrf_k: int = 60
    candidates: int = 100
    lists: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "text", (self.text or "").strip())
        if not self.text and not self.image:
            raise UserError("a search needs a text, an image or both")
        if not 1 <= self.k <= 1000:
            raise UserError(f"k must be between 1 and 1000, got {self.k}")
        if not 1 <= self.candidates <= 10_000:
            raise UserError(f"candidates must be between 1 and 10000, got {self.candidates}")
        if self.rrf_k < 0:
            raise UserError(f"rrf_k must be 0 or more, got {self.rrf_k}")
        unknown = sorted(set(self.lists) - set(LISTS))
        if unknown:
            raise UserError(f"unknown list(s) {', '.join(unknown)}: choose from {', '.join(LISTS)}")


@dataclass(frozen=True)
class SearchResult:
    key: str
    score: float
    ranks: dict[str, int]
    pmcid: str | None = None
    caption: str | None = None
    license_group: str | None = None
    license: str | None = None
    article_title: str | None = None
    year: int | None = None
    shard: str | None = None
    jpg_offset: int | None = None
    jpg_size: int | None = None
    width: int | None = None
    height: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SearchResponse:
    results: list[SearchResult]
    timings_ms: dict[str, float]
    lists: dict[str, int]  # candidates each list returned
    strategy: str  # none | prefilter | overfetch

    def to_dict(self) -> dict[str, Any]:
        return {
            "results": [result.to_dict() for result in self.results],
            "timings_ms": self.timings_ms,
            "lists": self.lists,
            "filter_strategy": self.strategy,
        }


class _Clock:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(self.timings.get(name, 0.0) + (time.perf_counter() - started) * 1000, 3)


def decode_image(data: bytes, decode_size: int = 0) -> Any:
    """The uploaded bytes as an RGB PIL image; anything else is a UserError."""
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data))
        if decode_size:
            image.draft("RGB", (decode_size, decode_size))
        return image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise NotAnImage("the uploaded file is not an image (JPEG, PNG, TIFF, … expected)") from error


@dataclass
class SearchEngine:
    """A workspace's catalog, the vector index of one embedding set and its model (loaded on first use)."""

    workspace: Workspace
    catalog: Catalog
    index: VectorIndex
    model_spec: str
    prefilter_max_rows: int = 20_000
    query_threads: int = 1  # torch threads per query encoding: one query is small; more threads only contend
    _embedder: Embedder | None = None
    _catalog_lock: threading.Lock = field(default_factory=threading.Lock)
    _model_lock: threading.Lock = field(default_factory=threading.Lock)
    _total: int | None = None
    _articles: ArticleIndex | None = None

    @classmethod
    def open(cls, workspace: Workspace | str, embeddings: str, model_spec: str | None = None) -> SearchEngine:
        workspace = workspace if isinstance(workspace, Workspace) else Workspace.at(workspace)
        index = open_index(workspace, embeddings)
        catalog = open_catalog(workspace, progress=False)
        if not catalog.has_search_index:  # extraction's refresh skips it: the BM25 list needs it
            catalog.close()
            refresh_catalog(workspace, search_index=True, progress=False)
            catalog = open_catalog(workspace, progress=False)
        return cls(workspace, catalog, index, model_spec or index.manifest["card_spec"])

    def __enter__(self) -> SearchEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.catalog.close()

    # --- encoders -----------------------------------------------------------------------------------------
    @property
    def embedder(self) -> Embedder:
        with self._model_lock:
            if self._embedder is None:
                self._embedder = load_embedder(parse_model_spec(self.model_spec, self.workspace.root))
            return self._embedder

    @contextmanager
    def _encoding(self) -> Iterator[None]:
        """The model, alone and on `query_threads` torch threads (restored after: a notebook may embed next)."""
        import torch

        with self._model_lock:
            previous = torch.get_num_threads()
            torch.set_num_threads(self.query_threads)
            try:
                yield
            finally:
                torch.set_num_threads(previous)

    def encode_text(self, text: str) -> np.ndarray | None:
        embedder = self.embedder
        if embedder.encode_texts is None or embedder.tokenize is None:
            return None
        with self._encoding():
            return embedder.encode_texts(embedder.tokenize([text]))[0]

    def encode_image(self, data: bytes) -> np.ndarray:
        import torch

        embedder = self.embedder
        image = decode_image(data, embedder.decode_size)
        with self._encoding():
            return embedder.encode_images(torch.stack([embedder.transform(image)]))[0]

    # --- catalog ------------------------------------------------------------------------------------------
    def _query(self, template: str, selection: FigureFilter | None, *extra: Any) -> list[tuple]:
        with self._catalog_lock:
            return self.catalog.query(template, selection, *extra)

    def total(self) -> int:
        if self._total is None:
            with self._catalog_lock:
                self._total = self.catalog.count()
        return self._total

    def selected(self, selection: FigureFilter, keys: list[str]) -> set[str]:
        """Which of `keys` the selection holds."""
        wanted = [k for k in keys if not selection.keys or k in set(selection.keys)]
        if not wanted:
            return set()
        return {key for (key,) in self._query(sql.SELECTED_KEYS, replace(selection, keys=tuple(wanted)))}

    def rows(self, statement: str, params: list[Any]) -> list[dict[str, Any]]:
        """Rows of a named template with bound parameters, as dicts (serialised with the engine's other queries)."""
        with self._catalog_lock:
            cursor = self.catalog.execute(statement, params)
            names = [column[0] for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def describe(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        with self._catalog_lock:
            return {row["key"]: row for row in self.catalog.rows_by_key(keys, sql.RESULT_COLUMNS)}

    def figure(self, key: str) -> dict[str, Any] | None:
        """A figure's page facts (`sql.FIGURE_COLUMNS`), None when no figure has this key."""
        with self._catalog_lock:
            found = self.catalog.rows_by_key([key], sql.FIGURE_COLUMNS)
        return found[0] if found else None

    # --- lists --------------------------------------------------------------------------------------------
    def vector_list(
        self, tower: str, vector: np.ndarray, n: int, selection: FigureFilter, memo: dict | None = None
    ) -> tuple[list[str], str]:
        """The `n` nearest selected rows of one tower, best first, and how the filter was applied.

        `memo` (one per search) keeps the selection's resolution, so several lists of a query share it.
        """
        if selection == FigureFilter():
            _, rows = self.index.search(tower, vector, n)
            return [self.index.key(int(r)) for r in rows], "none"
        memo = {} if memo is None else memo
        if "selection" not in memo:
            memo["selection"] = self._resolve(selection)
        count, selected_rows = memo["selection"]
        if selected_rows is not None:
            return self._exact_among(tower, vector, n, selected_rows), "prefilter"
        fraction = count / max(self.total(), 1)
        fetch = min(self.index.rows, math.ceil(n / fraction * 2))
        while True:
            _, rows = self.index.search(tower, vector, fetch)
            keys = [self.index.key(int(r)) for r in rows]
            keep = self.selected(selection, keys)
            kept = [key for key in keys if key in keep]
            if len(kept) >= n or fetch >= self.index.rows:
                return kept[:n], "overfetch"
            fetch = min(self.index.rows, fetch * 4)

    def article_index(self) -> ArticleIndex | None:
        """The article index, opened on first use; None while the workspace has none (`workbench index`)."""
        if self._articles is None and has_article_index(self.workspace):
            with contextlib.suppress(ArticleIndexMissing):
                self._articles = ArticleIndex.open(self.workspace)
        return self._articles

    def top_articles(self, text: str, n: int) -> list[str]:
        """PMCIDs of the `n` best BM25 matches of `text` among full article texts, best first."""
        index = self.article_index()
        return index.ranked(text, n).pmcids if index is not None else []

    def article_list(self, text: str, n: int, selection: FigureFilter) -> list[str]:
        """The `articles` list: the selected figures of the best articles, article by article (each article's
        figures in figure order), `n` at most. Articles are ranked in growing batches until `n` selected figures
        are found or every matching article was seen, so a filter loses nothing."""
        index = self.article_index()
        if index is None:
            return []
        keys: list[str] = []
        seen, batch = 0, ARTICLES_FIRST_BATCH
        while True:
            ranked = index.ranked(text, batch)
            fresh = ranked.pmcids[seen:]
            if fresh and selection == FigureFilter() and index.keys_current():  # the keys it stores: no catalog scan
                keys += [key for figures in ranked.figures[seen:] for key in figures]
            elif fresh:
                found: dict[str, list[str]] = {}
                for key, pmcid in self._query(sql.ARTICLE_FIGURE_KEYS, selection, fresh):
                    found.setdefault(pmcid, []).append(key)
                keys += [key for pmcid in fresh for key in sorted(found.get(pmcid, ()), key=figure_order)]
            seen = len(ranked.pmcids)
            if len(keys) >= n or ranked.complete:
                return keys[:n]
            batch *= ARTICLES_GROWTH

    def _resolve(self, selection: FigureFilter) -> tuple[int, np.ndarray | None]:
        """(selected figures, their index rows when few enough to search exactly; else None: over-fetch)."""
        limit = self.prefilter_max_rows
        keys = [key for (key,) in self._query(sql.SELECTED_KEYS_UP_TO, selection, limit + 1)]
        if len(keys) <= limit:
            return len(keys), self.index.rows_of(keys)
        with self._catalog_lock:
            return self.catalog.count(selection), None

    def _exact_among(self, tower: str, vector: np.ndarray, n: int, rows: np.ndarray) -> list[str]:
        if not len(rows):
            return []
        stored = self.index.indexes[tower].reconstruct_batch(rows)
        scores = stored @ np.asarray(vector, dtype=np.float32)
        best = np.argsort(-scores, kind="stable")[:n]
        return [self.index.key(int(rows[i])) for i in best]

    def search(self, request: SearchRequest) -> SearchResponse:
        clock = _Clock()
        wanted = set(request.lists or DEFAULT_LISTS)
        lists: dict[str, list[str]] = {}
        strategy = "none"
        n = request.candidates
        memo: dict = {}
        with clock.stage("total"):
            if request.text:
                if "bm25" in wanted:
                    with clock.stage("bm25"), self._catalog_lock:
                        lists["bm25"] = [key for key, _ in search_text(self.catalog, request.text, n, request.filter)]
                if "articles" in wanted:
                    with clock.stage("articles"):
                        lists["articles"] = self.article_list(request.text, n, request.filter)
                if wanted & {"images", "captions"}:
                    with clock.stage("encode_text"):
                        vector = self.encode_text(request.text)
                    for name, tower in (("images", "image"), ("captions", "text")):
                        if vector is not None and name in wanted and tower in self.index.towers:
                            with clock.stage(f"vectors_{name}"):
                                lists[name], strategy = self.vector_list(tower, vector, n, request.filter, memo)
            if request.image:
                with clock.stage("encode_image"):
                    vector = self.encode_image(request.image)
                for name, tower in (("similar_images", "image"), ("similar_captions", "text")):
                    if name in wanted and tower in self.index.towers:
                        with clock.stage(f"vectors_{name}"):
                            lists[name], strategy = self.vector_list(tower, vector, n, request.filter, memo)
            with clock.stage("fuse"):
                fused = rrf(lists, request.rrf_k, request.k)
            with clock.stage("describe"):
                rows = self.describe([item.key for item in fused])
        results = [_result(item.key, item.score, item.ranks, rows.get(item.key, {})) for item in fused]
        return SearchResponse(results, clock.timings, {name: len(keys) for name, keys in lists.items()}, strategy)


def _result(key: str, score: float, ranks: dict[str, int], row: dict[str, Any]) -> SearchResult:
    return SearchResult(
        key=key,
        score=round(score, 6),
        ranks=ranks,
        pmcid=row.get("pmcid"),
        caption=row.get("caption"),
        license_group=row.get("license_group"),
        license=row.get("license"),
        article_title=row.get("article_title"),
        year=row.get("article_year"),
        shard=row.get("shard"),
        jpg_offset=row.get("jpg_offset"),
        jpg_size=row.get("jpg_size"),
        width=row.get("width"),
        height=row.get("height"),
    )
