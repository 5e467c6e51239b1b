"""What extracting one package produces. The per-article function returns an `ArticleResult`;
the pipeline (shards, catalog, Dask) consumes it. Field names follow data_catalog/schemas/."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

_UNSAFE_KEY_CHARS = re.compile(r"[^A-Za-z0-9_-]+")


def _sanitised(figure_id: str) -> str:
    return _UNSAFE_KEY_CHARS.sub("-", figure_id).strip("-") or "fig"


def make_key(pmcid: str, figure_id: str, graphic_index: int) -> str:
    """Stable WebDataset key with no '.' (webdataset splits member names at the first dot).

    Pass the figure id through `key_figure_ids` first when an article has several figures: two ids may
    sanitise to the same text (`F1.a`, `F1-a`).
    """
    return f"{pmcid}_{_sanitised(figure_id)}_{graphic_index}"


def key_figure_ids(figure_ids: Iterable[str]) -> dict[str, str]:
    """Figure id -> the id to build its keys from, unique within the article.

    An id whose sanitised form no other id shares keeps it (existing keys never change); ids that sanitise to
    the same text each get a short hash of their original id appended, so neither depends on document order.
    """
    groups: dict[str, list[str]] = {}
    for figure_id in dict.fromkeys(figure_ids):
        groups.setdefault(_sanitised(figure_id), []).append(figure_id)
    unique = {}
    for base, ids in groups.items():
        for figure_id in ids:
            digest = hashlib.blake2b(figure_id.encode("utf-8"), digest_size=4).hexdigest()
            unique[figure_id] = base if len(ids) == 1 else f"{base}-{digest}"
    return unique


@dataclass(frozen=True)
class ExtractError:
    """Something that did not become a pair, with its reason (see data_catalog/schemas/errors.yaml)."""

    package: str
    stage: str
    reason: str
    detail: str = ""
    pmcid: str | None = None


@dataclass(frozen=True)
class FigurePair:
    """One image-caption pair ready for a shard: `jpg` bytes, the caption as `txt`, `sample_json` as `json`.

    `row` holds the figures-catalog columns that do not depend on where the pair is written
    (everything but shard, offsets and duplicate_of).
    """

    key: str
    jpg: bytes
    caption: str
    sample_json: dict[str, Any]
    row: dict[str, Any]


@dataclass(frozen=True)
class ArticleResult:
    """Everything one package yields. `article` is None when the package could not be parsed at all."""

    package: str
    pmcid: str | None
    article: dict[str, Any] | None
    pairs: list[FigurePair] = field(default_factory=list)
    errors: list[ExtractError] = field(default_factory=list)
