"""The one way to keep a tantivy index on disk: the analyser, the figures text index's schema, writing documents
in batches, deleting by key, and swapping a rebuilt folder in (`textindex`, `text_units`, `workbench.search.articles`).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import tantivy

from workbench.fileio import fsync_folder
from workbench.workspace import Workspace

FORMAT_VERSION = 2  # bump when the schema or the analyser changes: forces a full rebuild
ANALYZER = "workbench_en"
HEAP_BYTES = 1_000_000_000  # the writer's indexing memory, all threads together
BATCH_ROWS = 50_000
COMMIT_ROWS = 2_000_000
SEPARATOR = "\x1f"  # between the stored caption, in-line references and title


class TextIndexMissing(FileNotFoundError):
    """The workspace has no text index yet (`workbench catalog refresh` builds it)."""


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


def index_root(workspace: Workspace) -> Path:
    return workspace.root / "indexes" / "text"


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


def text_schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("key", stored=True, tokenizer_name="raw", index_option="basic")
    builder.add_unsigned_field("key_hash", fast=True)
    builder.add_text_field("text", tokenizer_name=ANALYZER, index_option="freq")
    builder.add_bytes_field("fields", stored=True)  # caption, in-line references, title: why a figure matched
    return builder.build()


def open_index(
    folder: Path, schema: tantivy.Schema, missing: type[FileNotFoundError], create: bool = False
) -> tantivy.Index:
    """An index folder with the workbench analyser registered; `missing` is raised when there is none to open."""
    if not create and not index_exists(folder):
        raise missing(f"no index at {folder}")
    folder.mkdir(parents=True, exist_ok=True)
    index = tantivy.Index(schema, path=str(folder), reuse=not create)
    index.register_tokenizer(ANALYZER, analyzer())
    return index


def open_text_index(folder: Path, create: bool = False) -> tantivy.Index:
    return open_index(folder, text_schema(), TextIndexMissing, create)


def swap_in(build: Path, live: Path) -> None:
    """Put a rebuilt index in place; readers that opened the old one keep its (unlinked, mapped) files."""
    old = live.with_name(live.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if live.exists():
        live.rename(old)
    build.rename(live)
    fsync_folder(live.parent)
    shutil.rmtree(old, ignore_errors=True)


def delete_keys(writer: tantivy.IndexWriter, keys: Sequence[str]) -> None:
    for key in keys:
        writer.delete_documents_by_term("key", key)


def record_batches(cursor: duckdb.DuckDBPyConnection) -> Iterator[list[list]]:
    reader = cursor.to_arrow_reader(BATCH_ROWS)
    for batch in reader:
        yield [column.to_pylist() for column in batch.columns]


def add_figures(writer: tantivy.IndexWriter, batches: Iterator[list[list]], total: int, progress: bool) -> None:
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


def folder_inode(folder: Path) -> int:
    try:
        return folder.stat().st_ino
    except FileNotFoundError:
        return 0


def index_exists(folder: Path) -> bool:
    return folder.is_dir() and tantivy.Index.exists(str(folder))
