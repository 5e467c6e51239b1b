"""`workbench sample-mirror`: a PMC-like FTP tree that parses like the real thing, deterministic and resumable."""

from __future__ import annotations

import csv
import io
import json
import re
import tarfile
from collections import Counter
from pathlib import Path

import pytest
from lxml import etree
from PIL import Image

from workbench.cli import main
from workbench.licenses import license_group
from workbench.mirror import MirrorConfig, build_sample_mirror, sources
from workbench.mirror.build import FILE_LIST_HEADER, GROUND_TRUTH, MANIFEST
from workbench.mirror.concepts import CHART_CONCEPTS, IMAGE_CONCEPTS
from workbench.mirror.jats import license_url
from workbench.mirror.plan import LICENSE_WEIGHTS
from workbench.mirror.text import CHART_NAMES

XLINK = "{http://www.w3.org/1999/xlink}href"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".gif")
CITATION = re.compile(r"^[A-Za-z][^;]*\. \d{4}( [A-Z][a-z]{2}( \d{1,2})?)?; \d+(\([^)]+\))?:\S+$")
LAST_UPDATED = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
ARTICLES, SEED = 60, 1


def _build(out: Path, articles: int = ARTICLES, seed: int = SEED) -> int:
    return main(["sample-mirror", str(out), "--articles", str(articles), "--seed", str(seed), "--no-progress"])


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sample") / "mirror"
    assert _build(out) == 0
    return out


@pytest.fixture(scope="module")
def rows(mirror: Path) -> list[list[str]]:
    with (mirror / "oa_file_list.csv").open(newline="") as handle:
        return list(csv.reader(handle))


@pytest.fixture(scope="module")
def packages(mirror: Path, rows: list[list[str]]) -> dict[str, dict[str, bytes]]:
    """Every package's members, by accession id."""
    result = {}
    for row in rows[1:]:
        with tarfile.open(mirror / row[0]) as tar:
            result[row[2]] = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    return result


def _nxml(members: dict[str, bytes]) -> etree._Element:
    (data,) = [data for name, data in members.items() if name.endswith(".nxml")]
    return etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False))


def _resolve(href: str, folder: str, members: dict[str, bytes]) -> str | None:
    for candidate in (href, *(href + ext for ext in IMAGE_EXTENSIONS)):
        if f"{folder}/{candidate}" in members:
            return f"{folder}/{candidate}"
    return None


def test_file_list_has_pmc_header_and_value_formats(mirror: Path, rows: list[list[str]]) -> None:
    assert tuple(rows[0]) == FILE_LIST_HEADER
    assert ",".join(rows[0]) == "File,Article Citation,Accession ID,Last Updated (YYYY-MM-DD HH:MM:SS),PMID,License"
    assert len(rows) == ARTICLES + 1
    for file, citation, accession, updated, pmid, licence in rows[1:]:
        assert re.fullmatch(r"oa_package/[0-9a-f]{2}/[0-9a-f]{2}/PMC\d+\.tar\.gz", file)
        assert file.endswith(f"/{accession}.tar.gz") and (mirror / file).is_file()
        assert CITATION.match(citation), citation
        assert LAST_UPDATED.match(updated) and "2005" <= updated[:4] <= "2025"
        assert pmid == "" or pmid.isdigit()
        assert licence in LICENSE_WEIGHTS
    assert len({row[2] for row in rows[1:]}) == ARTICLES
    assert len({row[3][:4] for row in rows[1:]}) >= 5, "Last Updated spread over years"


def test_value_formats_match_the_real_file_list(realdata: Path) -> None:
    """The patterns the generated rows are held to accept PMC's real rows."""
    (excerpt,) = (realdata / "oa_file_list").glob("*.csv")
    with excerpt.open(newline="") as handle:
        real = list(csv.reader(handle))[:2000]
    assert all(len(row) == len(FILE_LIST_HEADER) for row in real)
    assert all(LAST_UPDATED.match(row[3]) for row in real)
    assert sum(bool(CITATION.match(row[1])) for row in real) > 0.99 * len(real)


def test_every_package_is_a_pmc_style_archive(rows: list[list[str]], packages: dict[str, dict[str, bytes]], mirror):
    for row in rows[1:]:
        accession = row[2]
        with tarfile.open(mirror / row[0]) as tar:
            members = tar.getmembers()
        assert members[0].isdir() and members[0].name == accession
        assert all(m.name.startswith(f"{accession}/") for m in members[1:])
        assert {m.uname for m in members} == {"pmc"}
        assert [m.name for m in members[1:]] == sorted(m.name for m in members[1:])
        assert sum(name.endswith(".nxml") for name in packages[accession]) == 1


def test_nxml_carries_ids_licence_and_figures_that_resolve(
    rows: list[list[str]], packages: dict[str, dict[str, bytes]]
) -> None:
    figures = 0
    for _, _, accession, _, pmid, licence in rows[1:]:
        members = packages[accession]
        root = _nxml(members)
        ids = {e.get("pub-id-type"): e.text for e in root.iter("article-id")}
        assert "PMC" + ids["pmc"] == accession and ids["doi"]
        assert ids.get("pmid", "") == pmid
        assert root.findtext(".//journal-title") and root.findtext(".//journal-id[@journal-id-type='iso-abbrev']")
        assert root.findtext(".//article-title") and root.find(".//abstract") is not None
        assert root.find(".//kwd-group/kwd") is not None and root.find(".//subj-group/subject") is not None
        (element,) = root.iter("license")
        year = int(root.findtext(".//pub-date[@pub-type='epub']/year"))
        assert element.get(XLINK) == license_url(licence, year)
        for fig in root.iter("fig"):
            figures += 1
            assert fig.findtext("label") and fig.find("caption/p") is not None
            graphics = fig.findall("graphic")
            assert 1 <= len(graphics) <= 2
            for graphic in graphics:
                member = _resolve(graphic.get(XLINK), accession, members)
                assert member, f"{accession}: {graphic.get(XLINK)} does not resolve"
                Image.open(io.BytesIO(members[member])).load()
        fig_ids = {fig.get("id") for fig in root.iter("fig")}
        cited = {rid for x in root.iter("xref") if x.get("ref-type") == "fig" for rid in x.get("rid").split()}
        assert cited == fig_ids, "every figure is cited, and only figures"
        assert root.find(".//ref-list/ref") is not None
    assert figures > ARTICLES


def test_packages_hold_realistic_variety(packages: dict[str, dict[str, bytes]]) -> None:
    """Hrefs with and without extension, GIF thumbnails, several formats, rid lists, tables with images
    that are not figures, and at least one article with no figure."""
    hrefs, suffixes, rid_lists, table_graphics, thumbnails, without_figures = [], Counter(), 0, 0, 0, 0
    for accession, members in packages.items():
        root = _nxml(members)
        hrefs += [g.get(XLINK) for g in root.iterfind(".//fig/graphic")]
        suffixes.update(Path(name).suffix for name in members)
        rid_lists += sum(" " in x.get("rid") for x in root.iter("xref") if x.get("ref-type") == "fig")
        for graphic in root.iterfind(".//table-wrap/graphic"):
            table_graphics += 1
            assert _resolve(graphic.get(XLINK), accession, members)
        thumbnails += sum(name.endswith(".gif") and name[:-4] + ".jpg" in members for name in members)
        without_figures += root.find(".//fig") is None
    assert any(Path(h).suffix in IMAGE_EXTENSIONS for h in hrefs) and any(not Path(h).suffix for h in hrefs)
    assert {".nxml", ".pdf", ".jpg", ".gif", ".png", ".tif"} <= set(suffixes)
    assert suffixes[".jpg"] > suffixes[".png"] + suffixes[".tif"]
    assert rid_lists and table_graphics and thumbnails and without_figures


def test_ground_truth_names_each_figure_graphic(mirror: Path, packages: dict[str, dict[str, bytes]]) -> None:
    truth = [json.loads(line) for line in (mirror / GROUND_TRUTH).read_text().splitlines()]
    by_package: dict[str, set[tuple[str, str]]] = {}
    for row in truth:
        assert row["concept"] in CHART_CONCEPTS + IMAGE_CONCEPTS
        members = packages[row["pmcid"]]
        assert f"{row['pmcid']}/{row['file_name']}" in members
        by_package.setdefault(row["pmcid"], set()).add((row["figure_id"], row["graphic_href"]))
    for accession, members in packages.items():
        root = _nxml(members)
        in_figures = {(fig.get("id"), g.get(XLINK)) for fig in root.iter("fig") for g in fig.iterfind("graphic")}
        assert by_package.get(accession, set()) == in_figures


def test_licences_span_all_three_groups(rows: list[list[str]]) -> None:
    groups = Counter(license_group(row[5]) for row in rows[1:])
    assert set(groups) == {"commercial", "noncommercial", "other"}


def test_chart_kinds_and_modalities_are_varied(mirror: Path) -> None:
    truth = [json.loads(line) for line in (mirror / GROUND_TRUTH).read_text().splitlines()]
    concepts = Counter(row["concept"] for row in truth)
    assert len(set(CHART_CONCEPTS) & set(concepts)) >= 7
    assert len(set(IMAGE_CONCEPTS) & set(concepts)) >= 6
    assert len({row["source"] for row in truth if not row["source"].startswith("chart:")}) >= 8
    for row in truth:  # captions say what is shown
        caption = row["caption"].lower()
        if row["concept_group"] == "chart":
            assert any(name.lower() in caption for name in CHART_NAMES[row["concept"]]), caption
        else:
            assert any(d.lower() in caption for d in sources.SOURCE_BY_NAME[row["source"]].descriptions), caption


def test_every_bundled_source_decodes_offline() -> None:
    for source, _ in sources.SOURCES:
        image = sources.decoded(source.name)
        assert image.mode in ("L", "RGB") and min(image.size) >= 64, source.name


def test_same_seed_same_bytes_and_rebuild_skips(mirror: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    assert _build(again) == 0
    files = sorted(p.relative_to(mirror) for p in mirror.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for name in files:
        assert (mirror / name).read_bytes() == (again / name).read_bytes(), name

    summary = build_sample_mirror(again, ARTICLES, SEED, progress=False)
    assert (summary.written, summary.skipped) == (0, ARTICLES)
    lost = [p for p in files if p.suffix == ".gz"][:2]
    for name in lost:  # as if an earlier run had been interrupted before writing them
        (again / name).unlink()
    resumed = build_sample_mirror(again, ARTICLES, SEED, progress=False)
    assert (resumed.written, resumed.skipped) == (2, ARTICLES - 2)
    grown = build_sample_mirror(again, ARTICLES + 3, SEED, progress=False)
    assert (grown.written, grown.skipped) == (3, ARTICLES)
    build_sample_mirror(again, ARTICLES, SEED, progress=False)
    for name in files:
        assert (mirror / name).read_bytes() == (again / name).read_bytes(), name
    assert len(list((again / "oa_package").rglob("*.tar.gz"))) == ARTICLES


def test_different_seeds_differ(tmp_path: Path) -> None:
    one, two = build_sample_mirror(tmp_path / "one", 4, 1, False), build_sample_mirror(tmp_path / "two", 4, 2, False)
    assert (tmp_path / "one" / "oa_file_list.csv").read_bytes() != (tmp_path / "two" / "oa_file_list.csv").read_bytes()
    assert one.license_counts != two.license_counts or one.concept_counts != two.concept_counts


def test_refuses_folders_it_did_not_build(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert _build(foreign, 2) == 2
    assert "not empty" in capsys.readouterr().err and (foreign / "notes.txt").read_text() == "mine"

    built = tmp_path / "built"
    assert _build(built, 2, seed=5) == 0
    before = (built / MANIFEST).read_bytes()
    assert _build(built, 2, seed=6) == 2
    assert "seed=5" in capsys.readouterr().err and (built / MANIFEST).read_bytes() == before


def test_bad_arguments_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _build(tmp_path / "zero", 0) == 2
    assert "--articles" in capsys.readouterr().err
    assert main(["sample-mirror", str(tmp_path / "x"), "--image-size", "600", "100"]) == 2
    assert not (tmp_path / "zero").exists() and not (tmp_path / "x").exists()


def test_worker_processes_write_the_same_packages(mirror: Path, rows: list[list[str]], tmp_path: Path) -> None:
    parallel = tmp_path / "parallel"
    summary = build_sample_mirror(parallel, 6, SEED, False, config=MirrorConfig(workers=2))
    assert summary.written == 6
    for row in rows[1:7]:
        assert (parallel / row[0]).read_bytes() == (mirror / row[0]).read_bytes()


def test_doctypes_are_those_of_real_pmc_files(realdata: Path, packages: dict[str, dict[str, bytes]]) -> None:
    def doctype(data: bytes) -> str:
        return re.search(rb"<!DOCTYPE[^>]*>", data[:2000]).group().decode()

    real = {doctype(p.read_bytes()) for p in realdata.rglob("*.nxml")}
    with tarfile.open(realdata / "pmc_packages" / "PMC12419688.tar.gz") as tar:
        real |= {doctype(tar.extractfile(m).read()) for m in tar.getmembers() if m.name.endswith(".nxml")}
    ours = {doctype(data) for members in packages.values() for name, data in members.items() if name.endswith(".nxml")}
    assert len(ours) >= 2 and ours <= real


def test_reference_parser_reads_the_generated_articles(
    packages: dict[str, dict[str, bytes]], rows: list[list[str]], tmp_path: Path
) -> None:
    """pubmed_parser (the reference PMC parser) finds the same title, ids and figure captions."""
    pp = pytest.importorskip("pubmed_parser")
    for _, _, accession, _, pmid, _ in rows[1:13]:
        members = packages[accession]
        (name,) = [n for n in members if n.endswith(".nxml")]
        path = tmp_path / Path(name).name
        path.write_bytes(members[name])
        meta = pp.parse_pubmed_xml(str(path))
        assert meta["pmc"] == accession.removeprefix("PMC") and meta["pmid"] == pmid and meta["full_title"]
        captions = pp.parse_pubmed_caption(str(path)) or []
        root = _nxml(members)
        assert len(captions) == len(root.findall(".//fig"))
        assert {c["graphic_ref"] for c in captions} <= {g.get(XLINK) for g in root.iterfind(".//fig/graphic")}
