"""oa_file_list.csv: the real excerpt (no header), header detection, truncation, selection."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import polars as pl
import pytest
from faulty_server import FILE_LIST_HEADER, FaultyServer, truncated_body

from workbench.acquire import (
    FileListError,
    RetryPolicy,
    Selection,
    fetch_file_list,
    read_file_list,
    read_pmcid_file,
    select,
    skip_bad_row,
)
from workbench.acquire.filelist import SCHEMA

EXCERPT = "oa_file_list/oa_file_list_excerpt_2020_noheader.csv"


@pytest.fixture(scope="module")
def excerpt(realdata: Path) -> Path:
    return realdata / EXCERPT


@pytest.fixture(scope="module")
def real_list(excerpt: Path) -> pl.DataFrame:
    return read_file_list(excerpt)


def test_real_excerpt_without_header(real_list: pl.DataFrame) -> None:
    assert real_list.height == 10_000
    assert dict(real_list.schema) == SCHEMA
    licences = dict(real_list["license"].value_counts().iter_rows())
    assert licences == {"NO-CC CODE": 7_500, "CC BY": 2_485, "CC0": 15}
    groups = dict(real_list["license_group"].value_counts().iter_rows())
    assert groups == {"other": 7_500, "commercial": 2_500}
    first = real_list.row(0, named=True)
    assert first["file"] == "oa_package/08/e0/PMC13900.tar.gz"
    assert first["pmcid"] == "PMC13900"
    assert first["pmid"] == "11250746"
    assert first["last_updated"] == datetime(2019, 11, 5, 11, 56, 12)
    assert first["year"] == 2001
    assert real_list["pmcid"].n_unique() == 10_000
    assert real_list["pmid"].null_count() > 0  # empty PMID fields become null, not ""


def test_header_row_is_recognised(excerpt: Path, real_list: pl.DataFrame, tmp_path: Path) -> None:
    with_header = tmp_path / "oa_file_list.csv"
    with_header.write_text(FILE_LIST_HEADER + excerpt.read_text())
    assert read_file_list(with_header).equals(real_list)
    assert read_file_list(tmp_path).height == 10_000  # a folder means FOLDER/oa_file_list.csv


def test_cut_last_line_is_reported(excerpt: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.csv"
    cut.write_bytes(excerpt.read_bytes()[:-7])  # "…,NO-CC CODE\n" -> "…,NO-CC"
    with pytest.raises(FileListError, match=r"cut\.csv: last line \(line 10000\) is cut off"):
        read_file_list(cut)


def test_row_with_missing_fields_is_reported(excerpt: Path, tmp_path: Path) -> None:
    lines = excerpt.read_text().splitlines(keepends=True)
    lines[4_999] = ",".join(lines[4_999].split(",")[:3]) + "\n"
    damaged = tmp_path / "damaged.csv"
    damaged.write_text("".join(lines))
    with pytest.raises(FileListError, match=r"damaged\.csv: line 5000: expected 6 fields, found 3"):
        read_file_list(damaged)
    assert read_file_list(damaged, on_bad_row=skip_bad_row).height == 9_999


def test_cut_at_a_field_boundary_is_reported(excerpt: Path, tmp_path: Path) -> None:
    text = excerpt.read_text()
    cut = tmp_path / "cut.csv"
    cut.write_text(text[: text.rindex(",")] + "\n")  # last row lost its License field but ends in a newline
    with pytest.raises(FileListError, match="line 10000: expected 6 fields, found 5"):
        read_file_list(cut)


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ("oa_package/aa/bb/X.tar.gz,Cit,13900,2019-11-05 11:56:12,1,CC BY", "is not a PMCID"),
        ("oa_package/aa/bb/X.tar.gz,Cit,PMC1,2019-11-05,1,CC BY", "is not YYYY-MM-DD HH:MM:SS"),
        ("../../etc/passwd,Cit,PMC1,2019-11-05 11:56:12,1,CC BY", "not a relative path"),
    ],
)
def test_malformed_rows(tmp_path: Path, row: str, problem: str) -> None:
    path = tmp_path / "oa_file_list.csv"
    path.write_text(FILE_LIST_HEADER + row + "\n")
    with pytest.raises(FileListError, match=f"line 2: .*{problem}"):
        read_file_list(path)


def test_empty_and_missing(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(FileListError, match="empty"):
        read_file_list(tmp_path / "empty.csv")
    with pytest.raises(FileListError, match="not found"):
        read_file_list(tmp_path / "nope.csv")


def test_quoted_citation_and_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "oa_file_list.csv"
    path.write_text(
        FILE_LIST_HEADER
        + 'oa_package/aa/bb/PMC1.tar.gz,"Nature, 2010 Jan; 1:2",PMC1,2019-01-01 00:00:00,,CC BY-NC\n'
        + "oa_package/cc/dd/PMC1.tar.gz,Nature 2010,PMC1,2021-01-01 00:00:00,5,CC BY-NC\n"
        + "oa_package/ee/ff/PMC2.tar.gz,J 1999,PMC2,2019-01-01 00:00:00,,\n"
    )
    frame = read_file_list(path)
    assert frame["pmcid"].to_list() == ["PMC1", "PMC2"]
    assert frame["file"][0] == "oa_package/cc/dd/PMC1.tar.gz"  # the newest row of a duplicated PMCID wins
    assert frame["license_group"].to_list() == ["noncommercial", "other"]
    assert frame["license"][1] is None


def test_read_from_url_with_retry(excerpt: Path, real_list: pl.DataFrame, tmp_path: Path) -> None:
    served = tmp_path / "served"
    served.mkdir()
    (served / "oa_file_list.csv").write_bytes(excerpt.read_bytes())
    with FaultyServer(served) as server:
        server.inject("oa_file_list.csv", truncated_body(0.7))
        url = server.url + "oa_file_list.csv"
        dest = fetch_file_list(url, tmp_path / "cache" / "oa_file_list.csv", retry=RetryPolicy(backoff_base=0.01))
        assert server.requests["/oa_file_list.csv"] == 2
        assert dest.read_bytes() == excerpt.read_bytes()
        assert read_file_list(url).equals(real_list)
        server.inject("oa_file_list.csv", *[truncated_body(0.5)] * 2)
        with pytest.raises(FileListError, match="truncated"):
            fetch_file_list(url, tmp_path / "again.csv", retry=RetryPolicy(attempts=2, backoff_base=0.01))
        assert not (tmp_path / "again.csv").exists()
        assert sorted(path.name for path in tmp_path.iterdir()) == ["cache", "served"]  # no partial file left


def test_selection(real_list: pl.DataFrame, tmp_path: Path) -> None:
    assert select(real_list, Selection()).height == 10_000
    assert select(real_list, Selection(license_groups=("commercial",))).height == 2_500
    assert select(real_list, Selection(license_groups=("noncommercial",))).height == 0
    assert select(real_list, Selection(pmcids=("pmc13900", "13901", "PMC999999999"))).height == 2
    since = datetime(2016, 1, 1)
    assert select(real_list, Selection(since=since)).height == real_list.filter(pl.col("last_updated") >= since).height
    assert select(real_list, Selection(limit=7))["pmcid"].to_list() == real_list["pmcid"].head(7).to_list()
    sample = select(real_list, Selection(license_groups=("commercial",), sample=50, seed=3))
    assert sample.height == 50
    assert set(sample["license_group"]) == {"commercial"}
    assert sample.equals(select(real_list, Selection(license_groups=("commercial",), sample=50, seed=3)))
    assert not sample.equals(select(real_list, Selection(license_groups=("commercial",), sample=50, seed=4)))
    assert select(real_list, Selection(sample=50, seed=3, limit=10)).height == 10
    ids = tmp_path / "ids.txt"
    ids.write_text("# wanted\nPMC13900\nPMC13901, PMC13902\n")
    assert read_pmcid_file(ids) == ("PMC13900", "PMC13901", "PMC13902")


def test_selection_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="unknown licence group 'free'"):
        Selection(license_groups=("free",))
    with pytest.raises(ValueError, match="not a PMCID"):
        Selection(pmcids=("doi:10.1/x",))
    with pytest.raises(ValueError, match="must not be negative"):
        Selection(limit=-1)
