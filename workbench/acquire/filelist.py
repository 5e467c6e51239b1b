"""Read and validate PMC's `oa_file_list.csv` from a path or a URL, with or without its header row.

PMC's columns: File, Article Citation, Accession ID, Last Updated (YYYY-MM-DD HH:MM:SS), PMID, License.
A download cut short shows as a last line without a line break or a row with the wrong number of fields;
both are reported with the source and line number instead of silently losing articles.
"""

from __future__ import annotations

import csv
import logging
import re
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import requests

from workbench.acquire.http import download, new_session
from workbench.errors import UserError
from workbench.licenses import license_group
from workbench.retry import FetchError, RetryPolicy, call_with_retries

log = logging.getLogger(__name__)

FILE_LIST_NAME = "oa_file_list.csv"
PMC_HEADER = ("File", "Article Citation", "Accession ID", "Last Updated (YYYY-MM-DD HH:MM:SS)", "PMID", "License")
RAW_COLUMNS = ("file", "citation", "pmcid", "last_updated", "pmid", "license")
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
SCHEMA = {
    "file": pl.String,
    "citation": pl.String,
    "pmcid": pl.String,
    "last_updated": pl.Datetime("us"),
    "pmid": pl.String,
    "license": pl.String,
    "license_group": pl.String,
    "year": pl.Int32,
}
_PMCID = re.compile(r"^PMC\d+$")
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
_YEAR = r"\b((?:18|19|20)\d{2})\b"


class FileListError(UserError):
    """The file list is unusable (truncated, malformed row, unreadable); the message names source and line."""


@dataclass(frozen=True)
class BadRow:
    """A row that cannot be an article: where it is and what is wrong with it."""

    source: str
    line: int
    fields: tuple[str, ...]
    problem: str

    def describe(self) -> str:
        return f"{self.source}: line {self.line}: {self.problem}"


def raise_on_bad_row(row: BadRow) -> None:
    """Default policy: a malformed row means a damaged file list; stop with a clear error."""
    raise FileListError(f"{row.describe()}; the file list looks truncated or damaged, fetch it again")


def skip_bad_row(row: BadRow) -> None:
    """Lenient policy: log the row and leave it out."""
    log.warning("skipping %s", row.describe())


def is_url(source: str | Path) -> bool:
    return isinstance(source, str) and source.split("://", 1)[0].lower() in {"http", "https"}


def fetch_file_list(
    url: str,
    dest: Path,
    session: requests.Session | None = None,
    timeout: float = 120.0,
    retry: RetryPolicy | None = None,
) -> Path:
    """Download the file list at `url` to `dest` (atomically, Content-Length checked, retried on transient errors)."""
    session = session or new_session(1)
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.part")
    try:
        call_with_retries(lambda: download(session, url, partial, timeout), retry or RetryPolicy())
    except FetchError as error:
        partial.unlink(missing_ok=True)
        raise FileListError(f"cannot fetch file list {url}: {error}") from error
    partial.replace(dest)
    return dest


def read_file_list(
    source: str | Path,
    on_bad_row: Callable[[BadRow], None] = raise_on_bad_row,
    session: requests.Session | None = None,
) -> pl.DataFrame:
    """Parse `oa_file_list.csv` (path or http(s) URL) into one row per article.

    Columns: file, citation, pmcid, last_updated (datetime), pmid (null when empty), license (null when empty),
    license_group (commercial/noncommercial/other as BIOMEDICA defines them), year (publication year from the
    citation, null when none). A header row is recognised and skipped. If a PMCID appears twice, its newest row wins.
    """
    if is_url(source):
        with tempfile.TemporaryDirectory(prefix="workbench-filelist-") as scratch:
            path = fetch_file_list(str(source), Path(scratch) / FILE_LIST_NAME, session)
            return _parse(path, str(source), on_bad_row)
    path = Path(source).expanduser()
    if path.is_dir():
        path = path / FILE_LIST_NAME
    if not path.is_file():
        raise FileListError(f"file list not found: {path}")
    return _parse(path, str(path), on_bad_row)


def _parse(path: Path, name: str, on_bad_row: Callable[[BadRow], None]) -> pl.DataFrame:
    _check_ends_with_newline(path, name)
    columns: list[list[str]] = [[] for _ in RAW_COLUMNS]
    for fields in _valid_rows(path, name, on_bad_row):
        for column, value in zip(columns, fields, strict=True):
            column.append(value)
    frame = pl.DataFrame(dict(zip(RAW_COLUMNS, columns, strict=True)), schema=dict.fromkeys(RAW_COLUMNS, pl.String))
    return _typed(frame)


def _check_ends_with_newline(path: Path, name: str) -> None:
    size = path.stat().st_size
    if size == 0:
        raise FileListError(f"{name}: file list is empty")
    with open(path, "rb") as handle:
        handle.seek(size - 1)
        cut = handle.read(1) != b"\n"
    if cut:
        raise FileListError(
            f"{name}: last line (line {_count_lines(path) + 1}) is cut off (no line break at the end); "
            "the download looks truncated, fetch the file list again"
        )


def _count_lines(path: Path) -> int:
    with open(path, "rb") as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))


def _valid_rows(path: Path, name: str, on_bad_row: Callable[[BadRow], None]) -> Iterator[list[str]]:
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as handle:
        reader = csv.reader(handle)
        for fields in reader:
            line = reader.line_num
            if line == 1 and _is_header(fields):
                continue
            problem = _problem(fields)
            if problem:
                on_bad_row(BadRow(name, line, tuple(fields), problem))
                continue
            yield [field.strip() for field in fields]


def _is_header(fields: list[str]) -> bool:
    return len(fields) >= 3 and fields[0].strip().lower() == "file" and fields[2].strip().lower() == "accession id"


def _problem(fields: list[str]) -> str | None:
    if len(fields) != len(PMC_HEADER):
        return f"expected {len(PMC_HEADER)} fields, found {len(fields)}"
    file, _, pmcid, updated, _, _ = (field.strip() for field in fields)
    if not file or file.startswith("/") or ".." in file.split("/"):
        return f"File {file!r} is not a relative path inside the FTP tree"
    if not _PMCID.match(pmcid):
        return f"Accession ID {pmcid!r} is not a PMCID"
    if not _TIMESTAMP.match(updated):
        return f"Last Updated {updated!r} is not YYYY-MM-DD HH:MM:SS"
    return None


def _typed(frame: pl.DataFrame) -> pl.DataFrame:
    groups = {name: license_group(name) for name in frame["license"].unique().to_list()}
    typed = frame.with_columns(
        pl.col("last_updated").str.strptime(pl.Datetime("us"), TIMESTAMP_FORMAT, strict=False),
        pl.col("pmid").replace("", None),
        pl.col("license").replace("", None),
        pl.col("license").replace_strict(groups, return_dtype=pl.String).alias("license_group"),
        pl.col("citation").str.extract(_YEAR, 1).cast(pl.Int32).alias("year"),
    )
    bad_dates = typed.filter(pl.col("last_updated").is_null())
    if bad_dates.height:
        raise FileListError(f"impossible Last Updated date for {bad_dates['pmcid'][0]}")
    newest = pl.col("last_updated") == pl.col("last_updated").max().over("pmcid")
    if typed["pmcid"].n_unique() != typed.height:
        typed = typed.filter(newest).unique("pmcid", keep="last", maintain_order=True)
    return typed.select(list(SCHEMA)).cast(SCHEMA)
