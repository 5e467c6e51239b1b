"""Which articles of the file list to fetch: licence groups, PMCIDs, `since`, a seeded sample, a limit."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import polars as pl

from workbench.errors import InputNotFound, UserError
from workbench.licenses import check_groups

_PMCID = re.compile(r"^(?:PMC)?(\d+)$", re.IGNORECASE)


@dataclass(frozen=True)
class Selection:
    """Filters applied in this order: licence groups, PMCIDs, since; then `sample` (seeded) or file-list order;
    then `limit`. None means no filter."""

    license_groups: tuple[str, ...] | None = None
    pmcids: tuple[str, ...] | None = None
    since: datetime | None = None
    sample: int | None = None
    seed: int = 0
    limit: int | None = None

    def __post_init__(self) -> None:
        if self.license_groups is not None:
            object.__setattr__(self, "license_groups", check_groups(tuple(self.license_groups)))
        if self.pmcids is not None:
            object.__setattr__(self, "pmcids", tuple(normalise_pmcid(pmcid) for pmcid in self.pmcids))
        if isinstance(self.since, date) and not isinstance(self.since, datetime):
            object.__setattr__(self, "since", datetime(self.since.year, self.since.month, self.since.day))
        for name in ("sample", "limit"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise UserError(f"--{name} must not be negative, got {value}")


def normalise_pmcid(text: str) -> str:
    """'PMC13900', 'pmc13900' or '13900' -> 'PMC13900'; anything else is a UserError naming it."""
    match = _PMCID.match(text.strip())
    if not match:
        raise UserError(f"not a PMCID: {text!r} (expected e.g. PMC13900)")
    return f"PMC{match.group(1)}"


def parse_since(text: str) -> datetime:
    """'2020-01-31' or '2020-01-31 12:00:00' -> datetime; a UserError naming the text otherwise."""
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError as error:
        raise UserError(f"--since {text!r} is not a date like 2020-01-31") from error


def read_pmcid_file(path: str | Path) -> tuple[str, ...]:
    """PMCIDs from a text file, one per line or separated by commas/whitespace; '#' starts a comment."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise InputNotFound(f"PMCID list not found: {file}")
    text = "\n".join(line.split("#", 1)[0] for line in file.read_text().splitlines())
    return tuple(normalise_pmcid(token) for token in re.split(r"[\s,]+", text) if token)


def select(file_list: pl.DataFrame, selection: Selection) -> pl.DataFrame:
    """Rows of `file_list` (as read by `read_file_list`) that `selection` picks, in file-list order."""
    chosen = file_list
    if selection.license_groups is not None:
        chosen = chosen.filter(pl.col("license_group").is_in(list(selection.license_groups)))
    if selection.pmcids is not None:
        chosen = chosen.filter(pl.col("pmcid").is_in(list(selection.pmcids)))
    if selection.since is not None:
        chosen = chosen.filter(pl.col("last_updated") >= selection.since)
    if selection.sample is not None and selection.sample < chosen.height:
        picked = chosen.with_row_index("_order").sample(n=selection.sample, seed=selection.seed, shuffle=False)
        chosen = picked.sort("_order").drop("_order")
    if selection.limit is not None:
        chosen = chosen.head(selection.limit)
    return chosen


def missing_pmcids(file_list: pl.DataFrame, selection: Selection) -> list[str]:
    """Requested PMCIDs that the file list does not contain (so the caller can say so)."""
    if selection.pmcids is None:
        return []
    known = set(file_list.filter(pl.col("pmcid").is_in(list(selection.pmcids)))["pmcid"].to_list())
    return [pmcid for pmcid in selection.pmcids if pmcid not in known]
