"""Where PMIDs to enrich come from: the workspace catalog, a list on the command line, a file."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import pyarrow.parquet as pq

from workbench.acquire.state import download_state
from workbench.errors import InputNotFound, UserError
from workbench.workspace import Workspace

_PMID = re.compile(r"^(?:pmid:\s*)?0*([1-9][0-9]{0,9})$", re.IGNORECASE)
_SEPARATORS = re.compile(r"[\s,;]+")


def normalize_pmid(value: object, source: str = "input") -> str:
    """`'12345'`, `' PMID:12345 '`, `12345` -> `'12345'`; anything else is a UserError naming `source`."""
    text = str(value).strip()
    match = _PMID.match(text)
    if match is None:
        raise UserError(f"bad PMID {text!r} in {source}: expected a positive integer such as 31588070")
    return match.group(1)


def normalize_pmids(values: Iterable[object], source: str = "input") -> list[str]:
    """Valid PMIDs of `values`, de-duplicated and sorted numerically; None and empty strings are dropped."""
    pmids = {normalize_pmid(value, source) for value in values if value is not None and str(value).strip()}
    return sorted(pmids, key=int)


def parse_pmid_text(text: str, source: str = "input") -> list[str]:
    """PMIDs separated by commas, semicolons or whitespace; `#` starts a comment that runs to the end of the line."""
    tokens = [token for line in text.splitlines() for token in _SEPARATORS.split(line.split("#", 1)[0])]
    return normalize_pmids(tokens, source)


def read_pmid_file(path: str | Path) -> list[str]:
    """PMIDs listed in a text file (see `parse_pmid_text`)."""
    path = Path(path)
    if not path.is_file():
        raise InputNotFound(f"PMID file {path} does not exist")
    return parse_pmid_text(path.read_text(), source=str(path))


def known_pmids(workspace: Workspace | str | Path) -> list[str]:
    """PMIDs the workspace already knows: acquisition's `downloads.pmid` and `pmid` of catalog/articles.parquet.

    Either may be missing (then it contributes nothing). De-duplicated, sorted numerically, empty values dropped.
    """
    ws = workspace if isinstance(workspace, Workspace) else Workspace.at(workspace)
    values: list[object] = []
    downloads = download_state(ws)
    if "pmid" in downloads.columns:
        values += downloads.get_column("pmid").drop_nulls().unique().to_list()
    articles = ws.catalog_dir / "articles.parquet"
    if articles.is_file():
        if "pmid" not in pq.read_schema(articles).names:
            raise ValueError(f"{articles} has no pmid column (see data_catalog/schemas/articles.yaml)")
        values += pq.read_table(articles, columns=["pmid"]).column("pmid").to_pylist()
    sources = " and ".join(str(path) for path in (ws.downloads_db, articles) if path.is_file())
    return normalize_pmids(values, source=sources or "workspace")
