"""BM25 search of the catalog: the text index (`workbench.catalog.textindex`) ranks, the catalog filters.

A query with no other condition is answered by the index alone (it stores each figure's caption, in-line
references and title, so phrase checks and "matched in" reasons need no catalog scan). With other conditions
(licence, year, a raw WHERE...) the index's best matches are taken in growing batches (1,000, then 8x more each
round, until `limit` survive or every match was seen) and the catalog keeps those its filter selects, by
`hash(key)` (the index stores DuckDB's hash of each key as a fast field): exact; each round is one scan of the
filtered catalog. Phrase mode ranks figures holding all the words, then keeps those holding the phrase.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb

from workbench.catalog import sql
from workbench.catalog.filters import CompiledFilter, phrase_pattern, phrase_words
from workbench.catalog.textindex import Hit, TextIndex

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
    """The `limit` best BM25 matches of `text` among the figures `where` selects, best first.

    `execute(statement, params)` runs on the catalog's connection; `where` holds the selection's other conditions
    (not the text query); `text_only` says it holds none. In phrase mode `matched` names the fields holding the
    phrase itself, otherwise the fields holding one of its (analysed) words.
    """
    if limit < 1:
        raise ValueError(f"limit must be 1 or more, got {limit}")
    if mode == "phrase" and not phrase_words(text):
        return []
    found = _phrase_finder(text) if mode == "phrase" else _word_finder(index, text)
    if text_only and mode != "phrase":
        hits = index.hits(text, limit, mode)
    else:
        hits = _ranked(execute, index, text, mode, limit, None if text_only else where, found)
    labels = tuple(FIELD_LABELS.values())
    return [
        SearchHit(
            hit.key, hit.score, tuple(name for name, value in zip(labels, hit.fields, strict=True) if found(value))
        )
        for hit in hits
    ]


def _phrase_finder(text: str) -> Callable[[str], bool]:
    pattern = re.compile(phrase_pattern(text))
    return lambda value: bool(value) and bool(pattern.search(" ".join(phrase_words(value))))


def _word_finder(index: TextIndex, text: str) -> Callable[[str], bool]:
    words = set(index.words(text))
    return lambda value: bool(value) and not words.isdisjoint(index.words(value))


def _ranked(
    execute: Execute,
    index: TextIndex,
    text: str,
    mode: str,
    limit: int,
    where: CompiledFilter | None,
    found: Callable[[str], bool],
) -> list[Hit]:
    """Best matches that `where` (None: no condition) selects and, in phrase mode, that hold the phrase."""
    batch = max(FIRST_BATCH, limit)
    while True:
        matches = index.matches(text, mode, batch)
        positions = range(len(matches.scores))
        if where is not None:
            hashes = matches.key_hashes
            statement = sql.SELECTED_HASHES.format(where=where.sql)
            selected = {key_hash for (key_hash,) in execute(statement, [*where.params, hashes]).fetchall()}
            positions = [i for i in positions if hashes[i] in selected]
        hits = []
        for i in positions:
            hit = matches.hit(i)
            if mode != "phrase" or any(found(value) for value in hit.fields):
                hits.append(hit)
                if len(hits) == limit:
                    return hits
        if matches.complete:
            return hits
        batch *= GROWTH


def text_keys(index: TextIndex, text: str, mode: str) -> Sequence[int]:
    """DuckDB's `hash(key)` of every figure matching `text` (phrase: all its words; SQL then checks the order)."""
    return index.matches(text, mode).key_hashes
