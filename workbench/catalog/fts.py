"""BM25 search of the catalog: the text index (`workbench.catalog.textindex`) ranks, the catalog filters.

A query with no other condition is answered by the index alone. With other conditions (licence, year, a raw
WHERE...) or in phrase mode, the index's best matches are taken in growing batches (1,000, then 8x more each round,
until `limit` survive or every match was seen) and the catalog keeps those its filter selects, by `hash(key)`
(the index stores DuckDB's hash of each key as a fast field): exact, and cheap while the filter is not much more
selective than the batch. Phrase mode ranks figures holding all the words, then keeps those holding the phrase.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb

from workbench.catalog import sql
from workbench.catalog.filters import CompiledFilter, phrase_pattern, phrase_words
from workbench.catalog.textindex import TextIndex

FIELD_LABELS = {"caption": "caption", "inline_text": "in-line reference", "title": "title"}
FIRST_BATCH = 1_000
GROWTH = 8


@dataclass(frozen=True)
class SearchHit:
    """A ranked match: its BM25 score and where the query matched (caption, in-line reference, title)."""

    key: str
    score: float
    matched: tuple[str, ...] = ()

    def reason(self) -> str:
        return "matched in " + (", ".join(self.matched) or "nothing indexed (phrase of stop words)")


Execute = Callable[[str, list[Any]], duckdb.DuckDBPyConnection]


def search(
    execute: Execute,
    index: TextIndex,
    text: str,
    mode: str,
    limit: int,
    where: CompiledFilter,
    text_only: bool = False,
) -> list[SearchHit]:
    """The `limit` best BM25 matches of `text` among the figures `where` selects, best first (ties: by key).

    `execute(statement, params)` runs on the catalog's connection; `where` holds the selection's other conditions
    (not the text query); `text_only` says it holds none. In phrase mode `matched` names the fields holding the
    phrase itself, otherwise the fields holding one of its (analysed) words.
    """
    if limit < 1:
        raise ValueError(f"limit must be 1 or more, got {limit}")
    if text_only and mode != "phrase":
        ranked = index.top(text, limit, mode)
    else:
        ranked = _filtered(execute, index, text, mode, limit, where)
    if not ranked:
        return []
    texts = {row[0]: row[1:] for row in execute(sql.SEARCH_TEXTS, [[key for key, _ in ranked]]).fetchall()}
    found = _phrase_finder(text) if mode == "phrase" else _word_finder(index, text)
    labels = tuple(FIELD_LABELS.values())
    hits = []
    for key, score in ranked:
        fields = zip(labels, texts.get(key, ()), strict=False)
        hits.append(SearchHit(key, score, tuple(name for name, value in fields if found(value))))
    return hits


def _phrase_finder(text: str) -> Callable[[str | None], bool]:
    pattern = re.compile(phrase_pattern(text))
    return lambda value: bool(value) and bool(pattern.search(" ".join(phrase_words(value))))


def _word_finder(index: TextIndex, text: str) -> Callable[[str | None], bool]:
    words = set(index.words(text))
    return lambda value: bool(value) and not words.isdisjoint(index.words(value))


def _filtered(
    execute: Execute, index: TextIndex, text: str, mode: str, limit: int, where: CompiledFilter
) -> list[tuple[str, float]]:
    """Best matches that `where` (and, in phrase mode, the phrase itself) selects, in growing batches."""
    clause, params = where.sql, list(where.params)
    if mode == "phrase":
        if not phrase_words(text):
            return []
        pattern = phrase_pattern(text)
        clause, params = f"({clause}) AND ({sql.PHRASE_MATCHES})", [*params, pattern, pattern, pattern]
    batch = max(FIRST_BATCH, limit)
    while True:
        hashes, scores, total = index.matches(text, "all" if mode == "phrase" else mode, batch)
        if not hashes:
            return []
        score_of = dict(zip(hashes, scores, strict=True))
        statement = sql.SEARCH_SELECTED_HASHES.format(where=clause)
        rows = execute(statement, [*params, list(score_of)]).fetchall()
        ranked = sorted(((key, score_of[key_hash]) for key, key_hash in rows), key=lambda hit: (-hit[1], hit[0]))
        if len(ranked) >= limit or batch >= total:
            return ranked[:limit]
        batch *= GROWTH


def text_keys(index: TextIndex, text: str, mode: str) -> Sequence[int]:
    """The key hashes of every figure matching `text` (phrase: all its words; the order is checked in SQL)."""
    hashes, _, _ = index.matches(text, "all" if mode == "phrase" else mode)
    return hashes
