"""Sources for an answer: the figures a search finds (caption, PMCID, key) and passages of their articles and of
the articles whose full text matches the question best (the article index)."""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from workbench.catalog.filters import phrase_words
from workbench.search import sql
from workbench.search.checks import query_words
from workbench.search.query import SearchEngine, SearchRequest


@dataclass(frozen=True)
class Source:
    """A numbered source: a figure (key, caption) or a passage of an article."""

    number: int
    kind: str  # figure | passage
    pmcid: str
    text: str
    key: str | None = None
    title: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        where = f"figure {self.key}" if self.kind == "figure" else "article passage"
        text = " ".join(self.text.split())
        return f"[{self.number}] {self.pmcid} {where}: {text[:300]}"


def passages(text: str, size: int = 600) -> list[str]:
    """An article's text as paragraphs, long ones cut to about `size` characters at sentence ends."""
    found: list[str] = []
    for paragraph in (p.strip() for p in re.split(r"\n+", text or "")):
        if len(paragraph) < 40:
            continue  # headings
        sentences, current = re.split(r"(?<=[.!?])\s+", paragraph), ""
        for sentence in sentences:
            if current and len(current) + len(sentence) > size:
                found.append(current)
                current = ""
            current = f"{current} {sentence}".strip()
        if current:
            found.append(current)
    return found


def best_passages(question: str, texts: list[tuple[str, str]], count: int) -> list[tuple[str, str]]:
    """The `count` (pmcid, passage) pairs sharing the most (idf-weighted) words with the question."""
    words = query_words(question)
    candidates = [(pmcid, passage) for pmcid, text in texts for passage in passages(text)]
    if not candidates or not words:
        return []
    bags = [Counter(phrase_words(passage)) for _, passage in candidates]
    df = Counter(word for bag in bags for word in set(bag) if word in words)
    scores = [sum(math.log(1 + len(bags) / df[w]) * min(bag[w], 3) for w in words if bag[w]) for bag in bags]
    order = sorted(range(len(candidates)), key=lambda i: -scores[i])
    return [candidates[i] for i in order[:count] if scores[i] > 0]


def retrieve(
    engine: SearchEngine,
    question: str,
    image: bytes | None = None,
    figures: int = 5,
    passage_count: int = 3,
    articles: int = 3,
) -> list[Source]:
    """Numbered sources: the top figures of a search for the question (and image), then the best passages of
    their articles and of the `articles` best full-text matches of the question."""
    results = engine.search(SearchRequest(text=question, image=image, k=figures)).results
    sources = [
        Source(i, "figure", r.pmcid or "", r.caption or "", r.key, r.article_title) for i, r in enumerate(results, 1)
    ]
    found = engine.top_articles(question, articles) if articles and passage_count else []
    pmcids = list(dict.fromkeys([*(r.pmcid for r in results if r.pmcid), *found]))
    if pmcids and passage_count:
        rows = engine.rows(sql.ARTICLE_TEXTS, [pmcids])
        texts = [(r["pmcid"], "\n".join(x for x in (r["abstract"], r["text"]) if x)) for r in rows]
        titles = {r["pmcid"]: r["title"] for r in rows}
        for pmcid, passage in best_passages(question, texts, passage_count):
            sources.append(Source(len(sources) + 1, "passage", pmcid, passage, None, titles.get(pmcid)))
    return sources
