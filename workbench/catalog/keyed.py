"""Figures by key at archive scale: a sorted key directory in the base, then lookups zone maps can prune.

A `key IN (...)` over 24M figures reads every row of every selected column (the key filter is only an optional
zone-map hint there): describing ten search results took ~30 s. The base file therefore holds `key_directory`
(key, licence group, year), sorted by key, where `key = ?` reads one row group; each found key is then fetched
from the base with its licence group and year, which the base is sorted by, so that read touches a row group or
two as well. Rows of the delta are read from the (small) delta table; base rows replaced or removed are skipped.
Longer lists go through the plain `key IN (...)` scan.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from workbench.catalog.sql import BASE_ALIAS

SMALL_LOOKUP = 64  # at most this many keys are looked up through the directory, more with one scan
DIRECTORY_BRANCH = f"SELECT key, license_group, article_year FROM {BASE_ALIAS}.main.key_directory WHERE key = ?"
BASE_BRANCH = (
    "SELECT {columns} FROM " + BASE_ALIAS + ".main.figures WHERE {group} AND {year} AND key = ? "
    "AND key NOT IN (SELECT key FROM figures_removed)"
)
DELTA_ROWS = "SELECT {columns} FROM figures_delta WHERE key IN (SELECT unnest(?::VARCHAR[]))"
SCAN = "SELECT {columns} FROM figures WHERE key IN (SELECT unnest(?::VARCHAR[]))"


def directory_lookup(keys: Sequence[str]) -> tuple[str, list[Any]]:
    """One statement finding each key's licence group and year in the directory (one equality per key)."""
    return " UNION ALL ".join(DIRECTORY_BRANCH for _ in keys), list(keys)


def rows_lookup(columns: str, located: Sequence[tuple[str, str | None, int | None]], keys: Sequence[str]):
    """One statement reading `columns` of the located base rows and of any delta rows among `keys`."""
    branches, params = [], []
    for key, group, year in located:
        branches.append(
            BASE_BRANCH.format(
                columns=columns,
                group="license_group IS NULL" if group is None else "license_group = ?",
                year="article_year IS NULL" if year is None else "article_year = ?",
            )
        )
        params.extend([value for value in (group, year) if value is not None] + [key])
    branches.append(DELTA_ROWS.format(columns=columns))
    params.append(list(keys))
    return " UNION ALL ".join(branches), params


def scan_lookup(columns: str, keys: Sequence[str]) -> tuple[str, list[Any]]:
    return SCAN.format(columns=columns), [list(keys)]


HAS_DIRECTORY = (
    f"SELECT count(*) FROM duckdb_tables() WHERE database_name = '{BASE_ALIAS}' AND table_name = 'key_directory'"
)


def rows_by_key(execute: Callable[..., Any], keys: Sequence[str], columns: str) -> tuple[list[str], list[tuple]]:
    """(column names, rows) of `columns` for the figures with these keys (unknown keys left out, any order);
    `execute(statement, params)` runs on the reader's connection."""
    keys = list(dict.fromkeys(keys))
    if keys and len(keys) <= SMALL_LOOKUP and execute(HAS_DIRECTORY, []).fetchone()[0]:
        located = execute(*directory_lookup(keys)).fetchall()
        statement, params = rows_lookup(columns, located, keys)
    else:
        statement, params = scan_lookup(columns, keys)
    cursor = execute(statement, params)
    return [column[0] for column in cursor.description], cursor.fetchall()
