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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import tantivy

from workbench.catalog import text_units
from workbench.catalog.progress import run_with_progress
from workbench.fileio import fsync_folder, read_json, write_json_atomically
from workbench.locks import exclusive_lock
from workbench.workspace import Workspace

FORMAT_VERSION = 2  # bump when the schema or the analyser changes: forces a full rebuild
ANALYZER = "workbench_en"
MODES = ("any", "all", "phrase")
HEAP_BYTES = 1_000_000_000  # the writer's indexing memory, all threads together
BATCH_ROWS = 50_000
COMMIT_ROWS = 2_000_000

# The indexed text of each figure; `$figures` is the Parquet truth.
TEXT = "concat_ws(chr(10), caption, array_to_string(inline_references, chr(10)), article_title)"
SOURCE_ROWS = """
SELECT key, hash(key) AS key_hash, coalesce(caption, '') AS caption,
       coalesce(array_to_string(inline_references, chr(10)), '') AS inline_text, coalesce(article_title, '') AS title
FROM read_parquet($figures)"""
SEPARATOR = "\x1f"  # between the stored caption, in-line references and title
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


class TextIndexMissing(FileNotFoundError):
    """The workspace has no text index yet (`workbench catalog refresh` builds it)."""


def index_root(workspace: Workspace) -> Path:
    return workspace.root / "indexes" / "text"


def figures_parquet(workspace: Workspace) -> Path:
    return workspace.catalog_dir / "figures.parquet"


def _fingerprint(paths: Sequence[Path]) -> str:
    """Size and mtime of each source file (extraction rewrites them atomically), the format and DuckDB's version
    (the index stores DuckDB's `hash(key)`)."""
    files = ";".join(f"{path}:{path.stat().st_size}:{path.stat().st_mtime_ns}" for path in paths)
    return f"v{FORMAT_VERSION}:duckdb-{duckdb.__version__}:{files}"


def analyzer() -> tantivy.TextAnalyzer:
    """Words of letters and digits, lower case, accents folded, English stop words dropped, English stemming."""
    return (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(40))
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.ascii_fold())
        .filter(tantivy.Filter.stopword("english"))
        .filter(tantivy.Filter.stemmer("english"))
        .build()
    )


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("key", stored=True, tokenizer_name="raw", index_option="basic")
    builder.add_unsigned_field("key_hash", fast=True)
    builder.add_text_field("text", tokenizer_name=ANALYZER, index_option="freq")
    builder.add_bytes_field("fields", stored=True)  # caption, in-line references, title: why a figure matched
    return builder.build()


def _open_index(folder: Path, create: bool = False) -> tantivy.Index:
    if not create and not _exists(folder):
        raise TextIndexMissing(f"no text index at {folder}")
    folder.mkdir(parents=True, exist_ok=True)
    index = tantivy.Index(_schema(), path=str(folder), reuse=not create)
    index.register_tokenizer(ANALYZER, analyzer())
    return index


# --- writing --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UpdateReport:
    """What `update_text_index` did: documents added (new or changed) and deleted, whether it rebuilt, seconds."""

    added: int
    deleted: int
    rebuilt: bool
    documents: int
    seconds: float

    def describe(self) -> str:
        what = "rebuilt" if self.rebuilt else f"+{self.added:,} / -{self.deleted:,} figures"
        return f"text index {what}: {self.documents:,} figures indexed in {self.seconds:.1f} s"


def is_current(workspace: Workspace) -> bool:
    """Whether the text index reflects the extraction manifest's units (else the current figures.parquet)."""
    state = read_json(index_root(workspace) / "state.json", default=dict)
    units = text_units.unit_source(workspace)
    if units is not None:
        return state.get("source") == _units_fingerprint(units)
    source = figures_parquet(workspace)
    return source.is_file() and state.get("source") == _fingerprint([source])


def _units_fingerprint(source: text_units.FigureSource) -> str:
    return f"v{FORMAT_VERSION}:duckdb-{duckdb.__version__}:{source.fingerprint}"


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
        return _update_by_units(workspace, units, full, progress, memory_limit, wait_s, heap_bytes)
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
        if not full and state.get("source") == fingerprint and _exists(root / "tantivy"):
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
            index = _open_index(root / "tantivy", create=rebuild)
            writer = index.writer(heap_size=heap_bytes, num_threads=2 if rebuild else 1)
            if not rebuild:
                _delete(writer, removed)
                _delete(writer, [key for (key,) in connection.execute("SELECT key FROM changed").fetchall()])
            rows = connection.execute(SOURCE_ROWS if rebuild else CHANGED_ROWS, params)
            _add(writer, _batches(rows), changed, progress)
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
            _swap(root, live)
    return UpdateReport(changed, len(removed), rebuild, documents, seconds)


def _update_by_units(
    workspace: Workspace,
    source: text_units.FigureSource,
    full: bool,
    progress: bool,
    memory_limit: str,
    wait_s: float | None,
    heap_bytes: int,
) -> UpdateReport:
    """`update_text_index` for a workspace with an extraction manifest: only new units' parts are read."""
    started = time.perf_counter()
    root = index_root(workspace)
    fingerprint = _units_fingerprint(source)
    with exclusive_lock(workspace.locks / "text-index.lock", f"another process is updating the text index {root}",
                        wait_s=wait_s):  # fmt: skip
        state = read_json(root / "state.json", default=dict)
        if not full and state.get("source") == fingerprint and _exists(root / "tantivy"):
            return UpdateReport(0, 0, False, int(state.get("documents", 0)), time.perf_counter() - started)
        usable = state.get("format") == FORMAT_VERSION and _exists(root / "tantivy") and state.get("units")
        plan = None if full or not usable else text_units.plan_update(workspace, source, state["units"])
        rebuild = plan is None
        plan = plan or text_units.plan_update(workspace, source, None)
        live, root = root, (root.with_name(root.name + ".build") if rebuild else root)
        if rebuild:
            shutil.rmtree(root, ignore_errors=True)  # an interrupted rebuild (we hold the lock)
        root.mkdir(parents=True, exist_ok=True)
        config = {"memory_limit": memory_limit, "preserve_insertion_order": False}
        with duckdb.connect(":memory:", config=config) as connection:
            connection.execute("SET enable_progress_bar_print = false")
            text_units.register_pairs(connection, workspace, plan)
            gone = [] if rebuild else text_units.gone_keys(connection, plan)
            incoming = [] if rebuild else text_units.incoming_keys(connection, plan)
            index = _open_index(root / "tantivy", create=rebuild)
            writer = index.writer(heap_size=heap_bytes, num_threads=2 if rebuild else 1)
            _delete(writer, [*gone, *incoming])  # a re-extracted figure replaces its document
            added = len(incoming)
            if plan.parts:
                params = {"parts": list(plan.parts)}
                if rebuild:
                    added = connection.execute(f"SELECT count(*) FROM ({text_units.UNIT_ROWS})", params).fetchone()[0]
                _add(writer, _batches(connection.execute(text_units.UNIT_ROWS, params)), added, progress)
            writer.commit()
            writer.wait_merging_threads()
        index.reload()
        documents = int(index.searcher().num_docs)
        seconds = time.perf_counter() - started
        timing = {"built_seconds": round(seconds, 1)} if rebuild else {"built_seconds": state.get("built_seconds")}
        write_json_atomically(
            {"format": FORMAT_VERSION, "source": fingerprint, "documents": documents, "units": plan.recorded(),
             **timing},
            root / "state.json",
        )  # fmt: skip
        if rebuild:
            _swap(root, live)
    return UpdateReport(int(added), len(gone), rebuild, documents, seconds)


def _swap(build: Path, live: Path) -> None:
    """Put a rebuilt index in place; readers that opened the old one keep its (unlinked, mapped) files."""
    old = live.with_name(live.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if live.exists():
        live.rename(old)
    build.rename(live)
    fsync_folder(live.parent)
    shutil.rmtree(old, ignore_errors=True)


def _delete(writer: tantivy.IndexWriter, keys: Sequence[str]) -> None:
    for key in keys:
        writer.delete_documents_by_term("key", key)


def _batches(cursor: duckdb.DuckDBPyConnection) -> Iterator[list[list]]:
    reader = cursor.to_arrow_reader(BATCH_ROWS)
    for batch in reader:
        yield [column.to_pylist() for column in batch.columns]


def _add(writer: tantivy.IndexWriter, batches: Iterator[list[list]], total: int, progress: bool) -> None:
    from tqdm import tqdm

    with tqdm(total=total, desc="text index", unit="figures", disable=not progress) as bar:
        for keys, hashes, captions, inline, titles in batches:
            if bar.n and bar.n % COMMIT_ROWS < len(keys):
                writer.commit()  # bounded work lost to an interruption; progress visible while building
            for key, key_hash, *fields in zip(keys, hashes, captions, inline, titles, strict=True):
                document = tantivy.Document()
                document.add_text("key", key)
                document.add_unsigned("key_hash", key_hash)
                document.add_text("text", "\n".join(fields))
                document.add_bytes("fields", SEPARATOR.join(fields).encode())
                writer.add_document(document)
            bar.update(len(keys))


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
        index = _open_index(root / "tantivy")
        return cls(root, index, analyzer().analyze, _inode(root / "tantivy"))

    def searcher(self) -> tantivy.Searcher:
        """A searcher on the latest commit, reopening the index when a rebuild swapped in a new folder."""
        folder = self.root / "tantivy"
        identity = _inode(folder)
        if identity and identity != self.identity:
            self.index, self.identity = _open_index(folder), identity
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


def _inode(folder: Path) -> int:
    try:
        return folder.stat().st_ino
    except FileNotFoundError:
        return 0


def has_text_index(workspace: Workspace) -> bool:
    """Whether the workspace has a committed text index (it may lag behind the Parquet: see `is_current`)."""
    return _exists(index_root(workspace) / "tantivy")


def _exists(folder: Path) -> bool:
    return folder.is_dir() and tantivy.Index.exists(str(folder))


def index_bytes(workspace: Workspace) -> int:
    return sum(path.stat().st_size for path in index_root(workspace).rglob("*") if path.is_file())
