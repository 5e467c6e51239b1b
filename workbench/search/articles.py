"""The article BM25 index of a workspace: each article's title, abstract and body text in a tantivy index on disk.

WS/indexes/articles/ holds `tantivy/` (one document per article: its `pmcid`, stored, and the analysed `text` with
term frequencies, no positions; the catalog text index's analyser), `docs.parquet` (pmcid and text digest of every
indexed article) and `state.json` (the articles.parquet fingerprint it reflects). `update_article_index` brings it
up to date with WS/catalog/articles.parquet the way the catalog's text index follows figures.parquet
(`workbench.catalog.textindex`): articles whose text digest changed or that are new are deleted by pmcid and added
again, articles gone are deleted, one tantivy commit publishes the change; a rebuild is written beside and swapped
in. Idempotent and kill-safe: an interrupted update leaves the previous commit, or a commit whose `docs.parquet`
lags, which the next update redoes.

Readers: `ArticleIndex.open(workspace).ranked(text, limit)` -> pmcids and BM25 scores, best first.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import tantivy

from workbench.catalog.progress import run_with_progress
from workbench.catalog.textindex import ANALYZER, _batches, _exists, _inode, _swap, analyzer
from workbench.fileio import read_json, write_json_atomically
from workbench.locks import exclusive_lock
from workbench.workspace import Workspace

FORMAT_VERSION = 1  # bump when the schema or the analyser changes: forces a full rebuild
HEAP_BYTES = 500_000_000  # the writer's indexing memory, all threads together
BATCH_ROWS = 2_000  # articles are long: small Arrow batches
COMMIT_ROWS = 200_000  # a rebuild commits this often (in a folder no reader opens): bounded loss, visible progress

# An article's version: a digest of the text indexed (title, abstract, body), one row per pmcid.
SOURCE_DIGESTS = """
CREATE TEMP TABLE source AS
SELECT pmcid, min(hash(coalesce(title, ''), coalesce(abstract, ''), coalesce(text, ''))) AS digest
FROM read_parquet($articles) WHERE pmcid IS NOT NULL GROUP BY pmcid"""
INDEXED_DIGESTS = "CREATE TEMP TABLE indexed AS SELECT pmcid, digest FROM read_parquet($docs)"
EMPTY_INDEXED = "CREATE TEMP TABLE indexed (pmcid VARCHAR, digest UBIGINT)"
CHANGED = "CREATE TEMP TABLE changed AS SELECT pmcid FROM source ANTI JOIN indexed USING (pmcid, digest)"
REMOVED = "SELECT pmcid FROM indexed ANTI JOIN source USING (pmcid)"
ROWS = """
SELECT pmcid, concat_ws(chr(10), title, abstract, text) AS text
FROM read_parquet($articles) WHERE pmcid IN (SELECT pmcid FROM changed)"""
WRITE_DOCS = "COPY (SELECT pmcid, digest FROM source ORDER BY pmcid) TO '{target}' (FORMAT parquet, COMPRESSION zstd)"


class ArticleIndexMissing(FileNotFoundError):
    """The workspace has no article index yet (`workbench index` builds it)."""


def index_root(workspace: Workspace) -> Path:
    return workspace.root / "indexes" / "articles"


def articles_parquet(workspace: Workspace) -> Path:
    return workspace.catalog_dir / "articles.parquet"


def has_article_index(workspace: Workspace) -> bool:
    return _exists(index_root(workspace) / "tantivy")


def _fingerprint(path: Path) -> str:
    return f"v{FORMAT_VERSION}:{path}:{path.stat().st_size}:{path.stat().st_mtime_ns}"


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("pmcid", stored=True, tokenizer_name="raw", index_option="basic")
    builder.add_text_field("text", tokenizer_name=ANALYZER, index_option="freq")
    return builder.build()


def _open_index(folder: Path, create: bool = False) -> tantivy.Index:
    if not create and not _exists(folder):
        raise ArticleIndexMissing(f"no article index at {folder}")
    folder.mkdir(parents=True, exist_ok=True)
    index = tantivy.Index(_schema(), path=str(folder), reuse=not create)
    index.register_tokenizer(ANALYZER, analyzer())
    return index


# --- writing --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ArticleIndexReport:
    """What `update_article_index` did: articles added (new or changed) and deleted, whether it rebuilt, seconds."""

    added: int
    deleted: int
    rebuilt: bool
    documents: int
    seconds: float

    def describe(self) -> str:
        changed = f"+{self.added:,} / -{self.deleted:,} articles" if self.added or self.deleted else "up to date"
        what = "rebuilt" if self.rebuilt else changed
        return f"article index {what}: {self.documents:,} articles indexed in {self.seconds:.1f} s"


def update_article_index(
    workspace: Workspace | str | Path,
    *,
    full: bool = False,
    progress: bool = True,
    memory_limit: str = "2GB",
    wait_s: float | None = None,
    heap_bytes: int = HEAP_BYTES,
) -> ArticleIndexReport:
    """Bring WS/indexes/articles/ up to date with WS/catalog/articles.parquet; cost follows the change.

    Idempotent (nothing to do: nothing written). Holds WS/locks/article-index.lock; `wait_s` bounds the wait.
    """
    workspace = workspace if isinstance(workspace, Workspace) else Workspace.at(workspace)
    source = articles_parquet(workspace)
    if not source.is_file():
        raise FileNotFoundError(f"no articles at {source}; run `workbench extract --workspace {workspace.root}`")
    started = time.perf_counter()
    root = index_root(workspace)
    workspace.locks.mkdir(parents=True, exist_ok=True)
    busy = f"another process is updating the article index {root}"
    with exclusive_lock(workspace.locks / "article-index.lock", busy, wait_s=wait_s):
        state = read_json(root / "state.json", default=dict)
        fingerprint = _fingerprint(source)
        if not full and state.get("source") == fingerprint and _exists(root / "tantivy"):
            return ArticleIndexReport(0, 0, False, int(state.get("documents", 0)), time.perf_counter() - started)
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
            params = {"articles": str(source)}
            run_with_progress(connection, SOURCE_DIGESTS, params, label="article index: digests", progress=progress)
            if rebuild:
                connection.execute(EMPTY_INDEXED)
            else:
                connection.execute(INDEXED_DIGESTS, {"docs": str(root / "docs.parquet")})
            connection.execute(CHANGED)
            removed = [pmcid for (pmcid,) in connection.execute(REMOVED).fetchall()]
            changed = [pmcid for (pmcid,) in connection.execute("SELECT pmcid FROM changed").fetchall()]
            if rebuild or changed or removed:  # (the file was rewritten with the same texts: nothing to index)
                index = _open_index(root / "tantivy", create=rebuild)
                writer = index.writer(heap_size=heap_bytes, num_threads=2 if rebuild else 1)
                if not rebuild:
                    for pmcid in [*removed, *changed]:
                        writer.delete_documents_by_term("pmcid", pmcid)
                _add(writer, _batches(connection.execute(ROWS, params)), len(changed), progress)
                writer.commit()
                writer.wait_merging_threads()
            target = str(root / "docs.next.parquet").replace("'", "''")
            connection.execute(WRITE_DOCS.format(target=target))
            (root / "docs.next.parquet").replace(root / "docs.parquet")
            documents = connection.execute("SELECT count(*) FROM source").fetchone()[0]
        with contextlib.suppress(OSError):
            spill.rmdir()  # only when empty: nothing was spilled (or another process still uses it)
        seconds = time.perf_counter() - started
        write_json_atomically(
            {"format": FORMAT_VERSION, "source": fingerprint, "documents": documents, "seconds": round(seconds, 1)},
            root / "state.json",
        )
        if rebuild:
            _swap(root, live)
    return ArticleIndexReport(len(changed), len(removed), rebuild, documents, seconds)


def _add(writer: tantivy.IndexWriter, batches: Iterator[list[list]], total: int, progress: bool) -> None:
    from tqdm import tqdm

    with tqdm(total=total, desc="article index", unit="articles", disable=not progress) as bar:
        for pmcids, texts in batches:
            if bar.n and bar.n % COMMIT_ROWS < len(pmcids):
                writer.commit()
            for pmcid, text in zip(pmcids, texts, strict=True):
                document = tantivy.Document()
                document.add_text("pmcid", pmcid)
                document.add_text("text", text or "")
                writer.add_document(document)
            bar.update(len(pmcids))


# --- reading --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RankedArticles:
    """The best articles for a query, best first; `complete` says they are every match."""

    pmcids: list[str]
    scores: list[float]
    complete: bool


@dataclass
class ArticleIndex:
    """An open, read-only article index; each query picks up the latest commit (or a swapped-in rebuild)."""

    root: Path
    index: tantivy.Index
    identity: int = 0  # the inode of root/tantivy when opened
    words: Callable[[str], list[str]] = field(default_factory=lambda: analyzer().analyze)

    @classmethod
    def open(cls, workspace: Workspace | str | Path) -> ArticleIndex:
        workspace = workspace if isinstance(workspace, Workspace) else Workspace.at(workspace)
        root = index_root(workspace)
        return cls(root, _open_index(root / "tantivy"), _inode(root / "tantivy"))

    def searcher(self) -> tantivy.Searcher:
        folder = self.root / "tantivy"
        identity = _inode(folder)
        if identity and identity != self.identity:
            self.index, self.identity = _open_index(folder), identity
        else:
            self.index.reload()
        return self.index.searcher()

    def ranked(self, text: str, limit: int) -> RankedArticles:
        """The `limit` best BM25 matches of any word of `text` (analysed as the catalog analyses captions)."""
        terms = list(dict.fromkeys(self.words(text)))
        searcher = self.searcher()
        if not terms or limit < 1:
            return RankedArticles([], [], True)
        schema = self.index.schema
        query = tantivy.Query.boolean_query(
            [(tantivy.Occur.Should, tantivy.Query.term_query(schema, "text", t, index_option="freq")) for t in terms]
        )
        hits = searcher.search(query, limit, count=False).hits
        pmcids = [searcher.doc(address).get_first("pmcid") for _, address in hits]
        return RankedArticles(pmcids, [float(score) for score, _ in hits], len(hits) < limit)

    def num_docs(self) -> int:
        return int(self.searcher().num_docs)
