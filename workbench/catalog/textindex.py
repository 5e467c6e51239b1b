"""The BM25 text index of a workspace: captions, in-line references and titles in a tantivy index on disk.

WS/indexes/text/ holds `tantivy/` (the index: one document per figure, its `key`, `key_hash` = DuckDB's
`hash(key)` as a fast field, and the analysed `text` with term frequencies, no positions), `docs.parquet` (key and
content digest of every indexed figure) and `state.json` (the Parquet fingerprint it reflects). `update_text_index`
brings it up to date with WS/catalog/figures.parquet incrementally: figures whose text changed or that are new are
deleted by key and added again, figures gone are deleted; one tantivy commit publishes the change atomically, so
readers (other processes included) see the old or the new state, never half of it. The update is idempotent: an
interrupted one leaves the previous commit, or a commit whose `docs.parquet` lags, which the next update redoes.

Readers: `search_text(workspace, query, k)` -> [(key, score)], best first (what hybrid search calls for its BM25
list); `TextIndex.open(workspace)` keeps the index open for many queries (`top`, `matches`).
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import tantivy

from workbench.catalog import text_units
from workbench.catalog.progress import run_with_progress
from workbench.catalog.tantivy_store import (
    ANALYZER,
    FORMAT_VERSION,
    HEAP_BYTES,
    SEPARATOR,
    TextIndexMissing,
    UpdateReport,
    add_figures,
    analyzer,
    delete_keys,
    folder_inode,
    index_exists,
    index_root,
    open_text_index,
    record_batches,
    swap_in,
)
from workbench.fileio import read_json, write_json_atomically
from workbench.locks import exclusive_lock
from workbench.workspace import Workspace

__all__ = [  # the text index's public names (its storage primitives live in `tantivy_store`)
    "ANALYZER",
    "Hit",
    "Matches",
    "TextIndex",
    "TextIndexMissing",
    "UpdateReport",
    "figures_parquet",
    "has_text_index",
    "index_bytes",
    "index_root",
    "is_current",
    "search_text",
    "update_text_index",
]

MODES = ("any", "all", "phrase")

# The indexed text of each figure; `$figures` is the Parquet truth.
TEXT = "concat_ws(chr(10), caption, array_to_string(inline_references, chr(10)), article_title)"
SOURCE_ROWS = """
SELECT key, hash(key) AS key_hash, coalesce(caption, '') AS caption,
       coalesce(array_to_string(inline_references, chr(10)), '') AS inline_text, coalesce(article_title, '') AS title
FROM read_parquet($figures)"""
# A figure's version: where extraction wrote its text (a re-extracted figure gets a new place in the shards) and
# the small columns derived from it. Reading these, not the text itself, keeps the diff of 24M figures cheap.
SOURCE_DIGESTS = """
CREATE TEMP TABLE source AS
SELECT key, hash(shard, txt_offset, txt_size, caption_length, inline_reference_count, article_title) AS digest
FROM read_parquet($figures)"""
INDEXED_DIGESTS = "CREATE TEMP TABLE indexed AS SELECT key, digest FROM read_parquet($docs)"
EMPTY_INDEXED = "CREATE TEMP TABLE indexed (key VARCHAR, digest UBIGINT)"
CHANGED_KEYS = "SELECT key FROM source ANTI JOIN indexed USING (key, digest)"
REMOVED_KEYS = "SELECT key FROM indexed ANTI JOIN source USING (key)"
CHANGED_ROWS = SOURCE_ROWS + " WHERE key IN (SELECT key FROM changed)"
WRITE_DOCS = "COPY (SELECT key, digest FROM source ORDER BY key) TO '{target}' (FORMAT parquet, COMPRESSION zstd)"


def figures_parquet(workspace: Workspace) -> Path:
    return workspace.catalog_dir / "figures.parquet"


def _fingerprint(paths: Sequence[Path]) -> str:
    """Size and mtime of each source file (extraction rewrites them atomically), the format and DuckDB's version
    (the index stores DuckDB's `hash(key)`)."""
    files = ";".join(f"{path}:{path.stat().st_size}:{path.stat().st_mtime_ns}" for path in paths)
    return f"v{FORMAT_VERSION}:duckdb-{duckdb.__version__}:{files}"


# --- writing --------------------------------------------------------------------------------------------------
def is_current(workspace: Workspace) -> bool:
    """Whether the text index reflects the extraction manifest's units (else the current figures.parquet)."""
    state = read_json(index_root(workspace) / "state.json", default=dict)
    units = text_units.unit_source(workspace)
    if units is not None:
        return state.get("source") == text_units.units_fingerprint(units)
    source = figures_parquet(workspace)
    return source.is_file() and state.get("source") == _fingerprint([source])


def update_text_index(
    workspace: Workspace | str | Path,
    *,
    full: bool = False,
    progress: bool = True,
    memory_limit: str = "2GB",
    wait_s: float | None = None,
    heap_bytes: int = HEAP_BYTES,
    sources: Sequence[Path] | None = None,
) -> UpdateReport:
    """Bring WS/indexes/text/ up to date with WS/catalog/figures.parquet; cost follows the change, `full` rebuilds.

    Idempotent (nothing to do: nothing written). Holds WS/locks/text-index.lock; `wait_s` bounds the wait.
    `sources` replaces the figures Parquet by a list of Parquet files of the same schema (their union is indexed).
    With an extraction manifest (and no `sources`) the index follows its units (`workbench.catalog.text_units`).
    """
    workspace = workspace if isinstance(workspace, Workspace) else Workspace.at(workspace)
    units = None if sources else text_units.unit_source(workspace)
    if units is not None:
        return text_units.update_by_units(workspace, units, full, progress, memory_limit, wait_s, heap_bytes)
    sources = [Path(path) for path in sources] if sources else [figures_parquet(workspace)]
    for source in sources:
        if not source.is_file():
            raise FileNotFoundError(f"no catalog at {source}; run `workbench extract --workspace {workspace.root}`")
    started = time.perf_counter()
    root = index_root(workspace)
    busy = f"another process is updating the text index {root}"
    with exclusive_lock(workspace.locks / "text-index.lock", busy, wait_s=wait_s):
        state = read_json(root / "state.json", default=dict)
        fingerprint = _fingerprint(sources)
        if not full and state.get("source") == fingerprint and index_exists(root / "tantivy"):
            return UpdateReport(0, 0, False, int(state.get("documents", 0)), time.perf_counter() - started)
        rebuild = full or state.get("format") != FORMAT_VERSION or not (root / "docs.parquet").is_file()
        live, root = root, (root.with_name(root.name + ".build") if rebuild else root)
        if rebuild:
            shutil.rmtree(root, ignore_errors=True)  # an interrupted rebuild (we hold the lock)
        root.mkdir(parents=True, exist_ok=True)
        spill = workspace.tmp / "duckdb-spill"
        spill.mkdir(parents=True, exist_ok=True)
        config = {"memory_limit": memory_limit, "temp_directory": str(spill), "preserve_insertion_order": False}
        with duckdb.connect(":memory:", config=config) as connection:
            connection.execute("SET enable_progress_bar_print = false")
            params = {"figures": [str(source) for source in sources]}
            run_with_progress(connection, SOURCE_DIGESTS, params, label="text index: digests", progress=progress)
            if rebuild:
                connection.execute(EMPTY_INDEXED)
            else:
                connection.execute(INDEXED_DIGESTS, {"docs": str(root / "docs.parquet")})
            connection.execute(f"CREATE TEMP TABLE changed AS {CHANGED_KEYS}")
            removed = [key for (key,) in connection.execute(REMOVED_KEYS).fetchall()]
            changed = connection.execute("SELECT count(*) FROM changed").fetchone()[0]
            index = open_text_index(root / "tantivy", create=rebuild)
            writer = index.writer(heap_size=heap_bytes, num_threads=2 if rebuild else 1)
            if not rebuild:
                delete_keys(writer, removed)
                delete_keys(writer, [key for (key,) in connection.execute("SELECT key FROM changed").fetchall()])
            rows = connection.execute(SOURCE_ROWS if rebuild else CHANGED_ROWS, params)
            add_figures(writer, record_batches(rows), changed, progress)
            writer.commit()  # (a rebuild also commits every COMMIT_ROWS, in a folder no reader opens)
            writer.wait_merging_threads()
            target = str(root / "docs.next.parquet").replace("'", "''")
            connection.execute(WRITE_DOCS.format(target=target))
            (root / "docs.next.parquet").replace(root / "docs.parquet")
            documents = connection.execute("SELECT count(*) FROM source").fetchone()[0]
        with contextlib.suppress(OSError):
            spill.rmdir()  # only when empty: nothing was spilled (or another process still uses it)
        seconds = time.perf_counter() - started
        timing = {"built_seconds": round(seconds, 1)} if rebuild else {"built_seconds": state.get("built_seconds")}
        write_json_atomically(
            {"format": FORMAT_VERSION, "source": fingerprint, "documents": documents, **timing}, root / "state.json"
        )
        if rebuild:
            swap_in(root, live)
    return UpdateReport(changed, len(removed), rebuild, documents, seconds)


# --- reading --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Hit:
    """A ranked figure: key, BM25 score and its indexed fields (caption, in-line references joined, title)."""

    key: str
    score: float
    fields: tuple[str, str, str]


@dataclass
class Matches:
    """Ranked matches on one searcher (a consistent commit): addresses and scores, best first; `complete` says
    they are every match (fewer than the limit asked for, or no limit)."""

    searcher: tantivy.Searcher
    addresses: list[tantivy.DocAddress]
    scores: list[float]
    complete: bool

    @property
    def key_hashes(self) -> list[int]:
        return self.searcher.fast_field_values("key_hash", self.addresses) if self.addresses else []

    def hit(self, i: int) -> Hit:
        document = self.searcher.doc(self.addresses[i])
        fields = tuple(document.get_first("fields").decode().split(SEPARATOR))
        return Hit(document.get_first("key"), self.scores[i], (*fields, "", "", "")[:3])


@dataclass
class TextIndex:
    """An open, read-only text index; `reload()` picks up a newer commit (each query does, cheaply)."""

    root: Path
    index: tantivy.Index
    words: Callable[[str], list[str]]
    identity: int = 0  # the inode of root/tantivy when opened: a rebuild swaps in a new folder

    @classmethod
    def open(cls, workspace: Workspace | str | Path) -> TextIndex:
        workspace = workspace if isinstance(workspace, Workspace) else Workspace.at(workspace)
        root = index_root(workspace)
        index = open_text_index(root / "tantivy")
        return cls(root, index, analyzer().analyze, folder_inode(root / "tantivy"))

    def searcher(self) -> tantivy.Searcher:
        """A searcher on the latest commit, reopening the index when a rebuild swapped in a new folder."""
        folder = self.root / "tantivy"
        identity = folder_inode(folder)
        if identity and identity != self.identity:
            self.index, self.identity = open_text_index(folder), identity
        else:
            self.index.reload()
        return self.index.searcher()

    def query(self, text: str, mode: str = "any") -> tantivy.Query | None:
        """The tantivy query for `text`: any word (OR), all words (AND); phrase = all words (order checked later).

        None when `text` has no indexable word (only stop words or punctuation).
        """
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        terms = list(dict.fromkeys(self.words(text)))
        if not terms:
            return None
        schema = self.index.schema
        occur = tantivy.Occur.Should if mode == "any" else tantivy.Occur.Must
        clauses = [(occur, tantivy.Query.term_query(schema, "text", term, index_option="freq")) for term in terms]
        return tantivy.Query.boolean_query(clauses)

    def top(self, text: str, k: int = 10, mode: str = "any") -> list[tuple[str, float]]:
        """The `k` best BM25 matches as (key, score), best first (ties: index order)."""
        return [(hit.key, hit.score) for hit in self.hits(text, k, mode)]

    def hits(self, text: str, k: int = 10, mode: str = "any") -> list[Hit]:
        """The `k` best matches with their stored caption, in-line references and title (`all` words: `phrase`)."""
        found = self.matches(text, mode, k)
        return [found.hit(i) for i in range(len(found.scores))]

    def matches(self, text: str, mode: str = "any", limit: int | None = None) -> Matches:
        """The best `limit` matches (None: all), best first, with DuckDB's `hash(key)` of each (`key_hashes`),
        for joining with a filtered selection in SQL. `phrase` matches all the words (the caller checks order)."""
        query = self.query(text, "all" if mode == "phrase" else mode)
        searcher = self.searcher()
        if query is None:
            return Matches(searcher, [], [], True)
        if limit is None:  # every match: count them first (counting scores every match; top-k alone skips)
            limit = searcher.search(query, 1, count=True).count
        if limit < 1:
            return Matches(searcher, [], [], True)
        hits = searcher.search(query, limit, count=False).hits
        return Matches(searcher, [a for _, a in hits], [float(score) for score, _ in hits], len(hits) < limit)

    def num_docs(self) -> int:
        return int(self.searcher().num_docs)


def search_text(
    workspace: Workspace | str | Path, query: str, k: int = 10, mode: str = "any"
) -> list[tuple[str, float]]:
    """Top `k` BM25 matches of `query` over captions, in-line references and titles: [(key, score)], best first.

    Raises `TextIndexMissing` when the workspace has no text index (`workbench catalog refresh` builds it).
    """
    return TextIndex.open(workspace).top(query, k, mode)


def has_text_index(workspace: Workspace) -> bool:
    """Whether the workspace has a committed text index (it may lag behind the Parquet: see `is_current`)."""
    return index_exists(index_root(workspace) / "tantivy")


def index_bytes(workspace: Workspace) -> int:
    return sum(path.stat().st_size for path in index_root(workspace).rglob("*") if path.is_file())
