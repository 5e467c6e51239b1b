"""What extracting one package produces. The per-article function returns an `ArticleResult`;
the pipeline (shards, catalog, Dask) consumes it. Field names follow data_catalog/schemas/."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_UNSAFE_KEY_CHARS = re.compile(r"[^A-Za-z0-9_-]+")


def make_key(pmcid: str, figure_id: str, graphic_index: int) -> str:
    """Unique, stable WebDataset key with no '.' (webdataset splits member names at the first dot)."""
    figure = _UNSAFE_KEY_CHARS.sub("-", figure_id).strip("-") or "fig"
    return f"{pmcid}_{figure}_{graphic_index}"


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
