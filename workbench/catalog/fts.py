"""BM25 full-text search over captions, in-line references and article titles (DuckDB's fts extension).

The extension comes from the PyPI wheel `duckdb-extension-fts` and is loaded by the path of its
`.duckdb_extension` file (a plain `LOAD fts` would look in ~/.duckdb and try the internet).
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from workbench.catalog import sql
from workbench.catalog.filters import CompiledFilter
from workbench.catalog.progress import run_with_progress
from workbench.duckdb_extensions import load_extension as load_duckdb_extension


def load_extension(connection: duckdb.DuckDBPyConnection) -> None:
    """LOAD the fts extension by file path (before the connection's file access is switched off)."""
    load_duckdb_extension(connection, "fts")


def has_search_index(connection: duckdb.DuckDBPyConnection) -> bool:
    return bool(connection.execute(sql.SCHEMA_EXISTS, [sql.SEARCH_INDEX]).fetchone()[0])


def build_search_index(connection: duckdb.DuckDBPyConnection, *, progress: bool = True) -> None:
    """(Re)build the BM25 index of the `figures` table on a writable connection, with a progress bar."""
    load_extension(connection)
    connection.execute(sql.SEARCH_TEXT)
    run_with_progress(connection, sql.CREATE_SEARCH_INDEX, label="search index", progress=progress)
    connection.execute(sql.DROP_SEARCH_TEXT)
    connection.execute(sql.SORT_POSTINGS)


@dataclass(frozen=True)
class SearchHit:
    key: str
    score: float


def term_ids(connection: duckdb.DuckDBPyConnection, text: str) -> tuple[int, ...]:
    """The index's ids of the words of `text` (after its tokenizer, stop words and stemmer)."""
    statement = sql.QUERY_TERM_IDS.format(index=sql.SEARCH_INDEX)
    return tuple(int(termid) for (termid,) in connection.execute(statement, [text]).fetchall())


def placeholders(count: int) -> str:
    return ", ".join("?" for _ in range(count))


def search(connection: duckdb.DuckDBPyConnection, text: str, limit: int, where: CompiledFilter) -> list[SearchHit]:
    """The `limit` best BM25 matches of `text` among the figures `where` selects, best first."""
    if not text.strip():
        raise ValueError("the search text is empty")
    if limit < 1:
        raise ValueError(f"limit must be 1 or more, got {limit}")
    ids = term_ids(connection, text)
    if not ids:
        return []
    template = sql.SEARCH_ALL if where.sql == "TRUE" else sql.SEARCH
    statement = where.render(template, term_ids=placeholders(len(ids)))
    rows = connection.execute(statement, [*ids, *ids, *where.params, limit]).fetchall()
    return [SearchHit(key, float(score)) for key, score in rows]
