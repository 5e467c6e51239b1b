"""Acquisition from PMC Open Access: file list, selection, resumable parallel downloads, `downloads` table."""

from workbench.acquire.downloader import DEFAULT_SOURCE, DownloadConfig, verify_package
from workbench.acquire.filelist import (
    BadRow,
    FileListError,
    fetch_file_list,
    raise_on_bad_row,
    read_file_list,
    skip_bad_row,
)
from workbench.acquire.job import (
    AcquireConfig,
    AcquireStopped,
    AcquireSummary,
    acquire,
    continue_on_failure,
    load_file_list,
    stop_on_failure,
)
from workbench.acquire.oaservice import DEFAULT_OA_SERVICE
from workbench.acquire.selection import Selection, normalise_pmcid, parse_since, read_pmcid_file, select
from workbench.acquire.state import PackageOutcome, clear_stale, download_state
from workbench.retry import RetryPolicy

__all__ = [
    "DEFAULT_OA_SERVICE",
    "DEFAULT_SOURCE",
    "AcquireConfig",
    "AcquireStopped",
    "AcquireSummary",
    "BadRow",
    "DownloadConfig",
    "FileListError",
    "PackageOutcome",
    "RetryPolicy",
    "Selection",
    "acquire",
    "clear_stale",
    "continue_on_failure",
    "download_state",
    "fetch_file_list",
    "load_file_list",
    "normalise_pmcid",
    "parse_since",
    "raise_on_bad_row",
    "read_file_list",
    "read_pmcid_file",
    "select",
    "skip_bad_row",
    "stop_on_failure",
    "verify_package",
]
