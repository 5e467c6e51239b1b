"""What a notebook or benchmark checks about search results: query words absent from captions."""

from __future__ import annotations

from collections.abc import Sequence

from workbench.catalog.filters import phrase_words
from workbench.search.query import SearchResult

STOP_WORDS = frozenset(("a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "in", "is", "of", "on", "or"))


def _stem(word: str) -> str:
    """A crude stem (the word less its last two letters, at least four kept): `cells` and `cell` meet."""
    return word[: max(4, len(word) - 2)]


def query_words(text: str) -> set[str]:
    return {word for word in phrase_words(text) if word not in STOP_WORDS and word != "the"}


def contains_any(caption: str, words: set[str]) -> bool:
    stems = {_stem(word) for word in words}
    return any(word.startswith(stem) for word in phrase_words(caption) for stem in stems)


def without_query_words(results: Sequence[SearchResult], text: str) -> list[SearchResult]:
    """Results whose caption holds none of the query's words, even inflected (found by vectors, not words)."""
    words = query_words(text)
    return [result for result in results if not contains_any(result.caption or "", words)]
