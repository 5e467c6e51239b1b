"""The article BM25 index of a workspace: each article's title, abstract and body text in a tantivy index on disk.

WS/indexes/articles/ holds `tantivy/` (one document per article: its `pmcid` and its figures' keys in figure order,
stored, and the analysed `text` with term frequencies, no positions; the catalog text index's analyser),
`docs.parquet` (pmcid and digest of every indexed article) and `state.json` (the fingerprints of articles.parquet and
figures.parquet it reflects). `update_article_index` brings it up to date with WS/catalog/ the way the catalog's
text index follows figures.parquet (`workbench.catalog.textindex`): articles whose digest (title, abstract, text,
figure keys) changed or that are new are deleted by pmcid and added again, articles gone are deleted, one tantivy
commit publishes the change; a rebuild is written beside and swapped in. Idempotent and kill-safe: an interrupted
update leaves the previous commit, or a commit whose `docs.parquet` lags, which the next update redoes.

Readers: `ArticleIndex.open(workspace).ranked(text, limit)` -> pmcids, BM25 scores and figure keys, best first;
`keys_current()` says whether those keys still match figures.parquet (else ask the catalog).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import tantivy

from workbench.catalog.progress import run_with_progress
from workbench.catalog.tantivy_store import (
    ANALYZER,
    analyzer,
    folder_inode,
    index_exists,
    open_index,
    record_batches,
    swap_in,
)
from workbench.fileio import read_json, write_json_atomically
from workbench.locks import exclusive_lock
from workbench.workspace import Workspace

FORMAT_VERSION = 2  # bump when the schema or the analyser changes: forces a full rebuild
HEAP_BYTES = 500_000_000  # the writer's indexing memory, all threads together
BATCH_ROWS = 2_000  # articles are long: small Arrow batches
COMMIT_ROWS = 200_000  # a rebuild commits this often (in a folder no reader opens): bounded loss, visible progress

# Each article's figure keys, then its version: a digest of the text indexed (title, abstract, body) and its keys.
FIGURE_KEYS = """
CREATE TEMP TABLE figure_keys AS
SELECT pmcid, list(key ORDER BY key) AS keys FROM read_parquet($figures) WHERE pmcid IS NOT NULL GROUP BY pmcid"""
SOURCE_DIGESTS = """
CREATE TEMP TABLE source AS
SELECT pmcid, min(hash(coalesce(title, ''), coalesce(abstract, ''), coalesce(text, ''), coalesce(keys, []))) AS digest
FROM read_parquet($articles) LEFT JOIN figure_keys USING (pmcid) WHERE pmcid IS NOT NULL GROUP BY pmcid"""
INDEXED_DIGESTS = "CREATE TEMP TABLE indexed AS SELECT pmcid, digest FROM read_parquet($docs)"
EMPTY_INDEXED = "CREATE TEMP TABLE indexed (pmcid VARCHAR, digest UBIGINT)"
CHANGED = "CREATE TEMP TABLE changed AS SELECT pmcid FROM source ANTI JOIN indexed USING (pmcid, digest)"
REMOVED = "SELECT pmcid FROM indexed ANTI JOIN source USING (pmcid)"
ROWS = """
SELECT pmcid, concat_ws(chr(10), title, abstract, text) AS text, coalesce(keys, []) AS keys
FROM read_parquet($articles) LEFT JOIN figure_keys USING (pmcid) WHERE pmcid IN (SELECT pmcid FROM changed)"""
WRITE_DOCS = "COPY (SELECT pmcid, digest FROM source ORDER BY pmcid) TO '{target}' (FORMAT parquet, COMPRESSION zstd)"


class ArticleIndexMissing(FileNotFoundError):
    """The workspace has no article index yet (`workbench index` builds it)."""


def index_root(workspace: Workspace) -> Path:
    return workspace.root / "indexes" / "articles"


def articles_parquet(workspace: Workspace) -> Path:
    return workspace.catalog_dir / "articles.parquet"


def has_article_index(workspace: Workspace) -> bool:
    return index_exists(index_root(workspace) / "tantivy")


def figures_parquet(workspace: Workspace) -> Path:
    return workspace.catalog_dir / "figures.parquet"


def _stamp(path: Path) -> str:
    """Size and modification time (extraction rewrites the catalog files atomically)."""
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def figure_order(key: str) -> tuple[tuple[int, int, str], ...]:
    """A figure key's place in its article: digit runs compare as numbers (PMC1_F2_0 before PMC1_F10_0), so
    figures come in their numbered order and a figure's graphics in `graphic_index` order."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", key) if part)


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("pmcid", stored=True, tokenizer_name="raw", index_option="basic")
    builder.add_bytes_field("figures", stored=True)  # its figures' keys in figure order, one a line
    builder.add_text_field("text", tokenizer_name=ANALYZER, index_option="freq")
    return builder.build()


def _open_index(folder: Path, create: bool = False) -> tantivy.Index:
    return open_index(folder, _schema(), ArticleIndexMissing, create)


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
    source, figures = articles_parquet(workspace), figures_parquet(workspace)
    for path in (source, figures):
        if not path.is_file():
            raise FileNotFoundError(f"no catalog at {path}; run `workbench extract --workspace {workspace.root}`")
    started = time.perf_counter()
    root = index_root(workspace)
    workspace.locks.mkdir(parents=True, exist_ok=True)
    busy = f"another process is updating the article index {root}"
    with exclusive_lock(workspace.locks / "article-index.lock", busy, wait_s=wait_s):
        state = read_json(root / "state.json", default=dict)
        fingerprint = {"articles": _stamp(source), "figures": _stamp(figures)}
        if not full and state.get("source") == fingerprint and index_exists(root / "tantivy"):
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
            connection.execute(FIGURE_KEYS, {"figures": str(figures)})
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
                _add(writer, record_batches(connection.execute(ROWS, params)), len(changed), progress)
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
            swap_in(root, live)
    return ArticleIndexReport(len(changed), len(removed), rebuild, documents, seconds)


def _add(writer: tantivy.IndexWriter, batches: Iterator[list[list]], total: int, progress: bool) -> None:
    from tqdm import tqdm

    with tqdm(total=total, desc="article index", unit="articles", disable=not progress) as bar:
        for pmcids, texts, keys in batches:
            if bar.n and bar.n % COMMIT_ROWS < len(pmcids):
                writer.commit()
            for pmcid, text, figures in zip(pmcids, texts, keys, strict=True):
                document = tantivy.Document()
                document.add_text("pmcid", pmcid)
                document.add_bytes("figures", "\n".join(sorted(figures, key=figure_order)).encode())
                document.add_text("text", text or "")
                writer.add_document(document)
            bar.update(len(pmcids))


# --- reading --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RankedArticles:
    """The best articles for a query, best first, with their figure keys as indexed (in figure order);
    `complete` says they are every match."""

    pmcids: list[str]
    scores: list[float]
    figures: list[tuple[str, ...]]
    complete: bool


@dataclass
class ArticleIndex:
    """An open, read-only article index; each query picks up the latest commit (or a swapped-in rebuild)."""

    root: Path
    index: tantivy.Index
    figures_path: Path
    identity: int = 0  # the inode of root/tantivy when opened
    words: Callable[[str], list[str]] = field(default_factory=lambda: analyzer().analyze)
    _state: tuple[int, dict] = (0, {})  # (mtime of state.json, its content)

    @classmethod
    def open(cls, workspace: Workspace | str | Path) -> ArticleIndex:
        workspace = workspace if isinstance(workspace, Workspace) else Workspace.at(workspace)
        root = index_root(workspace)
        return cls(root, _open_index(root / "tantivy"), figures_parquet(workspace), folder_inode(root / "tantivy"))

    def keys_current(self) -> bool:
        """Whether the figure keys stored reflect the current figures.parquet (else the catalog maps articles to
        figures). state.json is written after the commit it describes, so a reader never trusts newer keys than
        the state says."""
        try:
            changed = (self.root / "state.json").stat().st_mtime_ns
            if changed != self._state[0]:
                self._state = (changed, read_json(self.root / "state.json", default=dict))
            return self._state[1].get("source", {}).get("figures") == _stamp(self.figures_path)
        except (FileNotFoundError, AttributeError):
            return False

    def searcher(self) -> tantivy.Searcher:
        folder = self.root / "tantivy"
        identity = folder_inode(folder)
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
            return RankedArticles([], [], [], True)
        schema = self.index.schema
        query = tantivy.Query.boolean_query(
            [(tantivy.Occur.Should, tantivy.Query.term_query(schema, "text", t, index_option="freq")) for t in terms]
        )
        hits = searcher.search(query, limit, count=False).hits
        documents = [searcher.doc(address) for _, address in hits]
        pmcids = [document.get_first("pmcid") for document in documents]
        figures = [tuple(filter(None, document.get_first("figures").decode().split("\n"))) for document in documents]
        return RankedArticles(pmcids, [float(score) for score, _ in hits], figures, len(hits) < limit)

    def num_docs(self) -> int:
        return int(self.searcher().num_docs)
