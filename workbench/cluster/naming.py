"""Provisional cluster names: the caption terms most particular to a cluster (tf-idf over clusters).

A term's score in a cluster is the share of the cluster's captions containing it times
`log(1 + clusters / clusters whose captions contain it)`; a name is the top `TERMS` terms, joined by ", ".
Terms are lower-case words of 3+ letters (digits allowed after the first letter), minus English stop words
and figure boilerplate ("scale", "bar", "panel", ...).
"""

from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np

from workbench.cluster.source import catalog_columns
from workbench.workspace import Workspace

TERMS = 3
_WORD = re.compile(r"[a-z][a-z0-9\-]{2,}")
STOP_WORDS = frozenset(
    [
        "the",
        "and",
        "for",
        "with",
        "from",
        "this",
        "that",
        "these",
        "those",
        "are",
        "was",
        "were",
        "been",
        "has",
        "have",
        "had",
        "not",
        "but",
        "all",
        "any",
        "its",
        "their",
        "into",
        "onto",
        "over",
        "under",
        "than",
        "then",
        "there",
        "which",
        "who",
        "whom",
        "whose",
        "what",
        "when",
        "where",
        "why",
        "how",
        "each",
        "other",
        "such",
        "only",
        "same",
        "both",
        "more",
        "most",
        "less",
        "very",
        "can",
        "may",
        "also",
        "after",
        "before",
        "between",
        "during",
        "within",
        "without",
        "per",
        "via",
        "using",
        "used",
        "shows",
        "shown",
        "show",
        "showing",
        "figure",
        "fig",
        "panel",
        "panels",
        "image",
        "images",
        "scale",
        "bar",
        "bars",
        "left",
        "right",
        "top",
        "bottom",
        "arrow",
        "arrows",
        "representative",
        "indicate",
        "indicates",
        "indicated",
        "marks",
        "see",
        "respectively",
        "data",
        "mean",
        "error",
        "sem",
        "values",
        "value",
    ]
)


def caption_terms(caption: str | None) -> set[str]:
    words = _WORD.findall((caption or "").lower())
    return {word.strip("-") for word in words if word.strip("-") not in STOP_WORDS and len(word.strip("-")) > 2}


def cluster_names(workspace: Workspace, keys: list[str], cluster_ids: np.ndarray, k: int) -> list[str]:
    """A provisional name per cluster id 0..k-1 ("" for a cluster without captioned members)."""
    captions = catalog_columns(workspace, keys, ("caption",))["caption"]
    per_cluster: list[Counter[str]] = [Counter() for _ in range(k)]
    for cluster, caption in zip(cluster_ids.tolist(), captions, strict=False):
        per_cluster[cluster].update(caption_terms(caption))
    sizes = np.bincount(cluster_ids, minlength=k)
    spread = Counter(term for counts in per_cluster for term in counts)
    names = []
    for cluster, counts in enumerate(per_cluster):
        scored = sorted(
            ((count / sizes[cluster]) * math.log(1 + k / spread[term]), term) for term, count in counts.items()
        )
        best = sorted(scored, key=lambda item: (-item[0], item[1]))[:TERMS]
        names.append(", ".join(term for _, term in best))
    return names
