"""BM25 full-text search over captions, in-line references and article titles (DuckDB's fts extension).

The extension comes from the PyPI wheel `duckdb-extension-fts` and is loaded by the path of its
`.duckdb_extension` file (a plain `LOAD fts` would look in ~/.duckdb and try the internet).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb

from workbench.catalog import sql
from workbench.catalog.filters import CompiledFilter, phrase_pattern, phrase_words
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


FIELD_LABELS = {"caption": "caption", "inline_text": "in-line reference", "title": "title"}


@dataclass(frozen=True)
class SearchHit:
    """A ranked match: its BM25 score and where the query matched (caption, in-line reference, title)."""

    key: str
    score: float
    matched: tuple[str, ...] = ()

    def reason(self) -> str:
        return "matched in " + (", ".join(self.matched) or "nothing indexed (phrase of stop words)")


def term_ids(connection: duckdb.DuckDBPyConnection, text: str) -> tuple[int | None, ...]:
    """The index's id of each distinct non-stop word of `text` (its tokenizer and stemmer); None: unknown word."""
    statement = sql.QUERY_TERM_IDS.format(index=sql.SEARCH_INDEX)
    rows = connection.execute(statement, [text]).fetchall()
    return tuple(None if termid is None else int(termid) for _, termid in rows)


def placeholders(count: int) -> str:
    return ", ".join("?" for _ in range(count)) or "NULL"


Execute = Callable[[str, list[Any]], duckdb.DuckDBPyConnection]


def search(
    execute: Execute,
    text: str,
    mode: str,
    ids: Sequence[int | None],
    limit: int,
    where: CompiledFilter,
    text_only: bool = False,
) -> list[SearchHit]:
    """The `limit` best BM25 matches among the figures `where` selects (it carries the text query), best first.

    `execute(statement, params)` runs on the catalog's connection; `ids` are `term_ids(text)`; `text_only` says
    `where` holds nothing but the text query (then the postings alone select, without scanning `figures`).
    In phrase mode `matched` names the fields holding the phrase itself, not just one of its words.
    """
    if limit < 1:
        raise ValueError(f"limit must be 1 or more, got {limit}")
    found = [termid for termid in ids if termid is not None]
    if text_only and mode != "phrase":  # the postings alone say which figures match
        if not found or (mode == "all" and len(found) < len(ids)):
            return []
        statement = sql.SEARCH_TEXT_ONLY.format(index=sql.SEARCH_INDEX, term_ids=placeholders(len(found)))
        params = [*found, 1 if mode == "any" else len(found), *found, *found, limit]
    else:
        statement = where.render(sql.SEARCH, term_ids=placeholders(len(found)))
        params = [*where.params, *found, *found, limit]
    rows = execute(statement, params).fetchall()
    hits = [SearchHit(key, float(score), tuple(FIELD_LABELS.get(f, f) for f in fields)) for key, score, fields in rows]
    if mode != "phrase" or not hits:
        return hits
    pattern = re.compile(phrase_pattern(text))
    texts = {row[0]: row[1:] for row in execute(sql.SEARCH_TEXTS, [[hit.key for hit in hits]]).fetchall()}
    labels = tuple(FIELD_LABELS.values())
    return [
        SearchHit(
            hit.key,
            hit.score,
            tuple(label for label, value in zip(labels, texts.get(hit.key, ()), strict=False) if _has(pattern, value)),
        )
        for hit in hits
    ]


def _has(pattern: re.Pattern[str], value: str | None) -> bool:
    return bool(value) and bool(pattern.search(" ".join(phrase_words(value))))
