"""Untrusted packages: hostile archives and folders never stop a run, never escape, never blow memory."""

from __future__ import annotations

import io
import json
import os
import pickle
import resource
import tarfile
import time
import tracemalloc
from pathlib import Path

import pytest
import yaml
from hostile import (
    HOSTILE_PACKAGES,
    Fig,
    Member,
    article_xml,
    good_package,
    gzip_bomb_package,
    image_bytes,
    jpeg_bytes,
    measure_in_subprocess,
    member_bomb_package,
    nxml_bomb_package,
    write_tar_gz,
)
from PIL import Image

from workbench.errors import UserError
from workbench.extract.article import ExtractConfig, extract_package
from workbench.extract.package import PackageLimits, open_package, read_capped

SLOW_BOMBS = {"gzip_bomb", "nxml_bomb"}  # each inflates 1.5 GiB: tested once below, with memory measured


def reasons(result) -> set[tuple[str, str]]:
    return {(error.stage, error.reason) for error in result.errors}


def snapshot(folder: Path) -> set[str]:
    return {str(path) for path in folder.rglob("*")}


@pytest.mark.parametrize("name", sorted(set(HOSTILE_PACKAGES) - SLOW_BOMBS))
def test_hostile_package_never_stops_the_run(name, tmp_path):
    package = HOSTILE_PACKAGES[name](tmp_path)
    before = snapshot(tmp_path.parent)
    result = extract_package(package)
    assert snapshot(tmp_path.parent) == before  # nothing written anywhere
    assert result.pairs or result.errors, "a package without a pair must say why"
    assert all(
        error.reason and error.stage in {"package", "member", "parse", "figure", "image"} for error in result.errors
    )
    pickle.loads(pickle.dumps(result))


def test_stray_traversal_and_absolute_members_are_recorded_and_the_good_pair_kept(tmp_path):
    result = extract_package(HOSTILE_PACKAGES["traversal"](tmp_path))
    assert [pair.key for pair in result.pairs] == ["PMC1000002_F1_0"]
    details = sorted(error.detail for error in result.errors)
    assert details == ["../../evil.jpg", "/etc/evil.nxml", "PMC1000002/../../../tmp/evil2.jpg"]
    assert reasons(result) == {("member", "path_traversal"), ("member", "absolute_path")}
    assert not (tmp_path.parent.parent / "evil.jpg").exists()


def test_links_and_devices_are_never_followed(tmp_path):
    result = extract_package(HOSTILE_PACKAGES["symlinked_image"](tmp_path))
    assert result.pairs == []
    assert reasons(result) == {("member", "link_member"), ("member", "device_member"), ("figure", "missing_image")}


def test_external_entity_is_not_resolved(tmp_path):
    result = extract_package(HOSTILE_PACKAGES["xxe"](tmp_path))
    assert [pair.caption for pair in result.pairs] == ["A caption."]
    hostname = Path("/etc/hostname").read_text().strip() if Path("/etc/hostname").exists() else ""
    dumped = json.dumps([pair.sample_json for pair in result.pairs]) + json.dumps(result.article, default=str)
    assert "&x;" not in dumped
    if len(hostname) > 3:
        assert hostname not in dumped


def test_billion_laughs_is_refused_quickly(tmp_path):
    started = time.perf_counter()
    result = extract_package(HOSTILE_PACKAGES["billion_laughs"](tmp_path))
    assert time.perf_counter() - started < 5
    assert result.article is None and ("parse", "malformed_xml") in reasons(result)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("png_bomb", ("image", "decompression_bomb")),
        ("truncated_jpeg", ("image", "truncated_image")),
        ("malformed_nxml", ("parse", "malformed_xml")),
        ("oversized_header", ("package", "oversized_header")),
        ("not_a_gzip", ("package", "corrupt_archive")),
        ("member_bomb", ("package", "too_many_members")),
    ],
)
def test_each_flaw_has_its_reason(name, expected, tmp_path):
    result = extract_package(HOSTILE_PACKAGES[name](tmp_path))
    assert result.pairs == []
    assert expected in reasons(result)


def test_cmyk_tiff_figure_is_kept_as_rgb_jpeg(tmp_path):
    result = extract_package(HOSTILE_PACKAGES["cmyk_tiff"](tmp_path))
    (pair,) = result.pairs
    image = Image.open(io.BytesIO(pair.jpg))
    assert (image.format, image.mode) == ("JPEG", "RGB")
    assert pair.row["source_format"] == "TIFF" and pair.row["reencoded"] is True
    assert pair.row["image_file_name"] == "PMC1000012/f1.tif"


def _peak_memory(run):
    """(result, tracemalloc peak bytes, growth of the process's peak RSS in bytes)."""
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    tracemalloc.start()
    try:
        result = run()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return result, peak, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss_before


def test_member_inflating_to_1_5_gib_is_skipped_without_reading_it(tmp_path):
    package = gzip_bomb_package(tmp_path)
    assert package.stat().st_size < 4_000_000
    result, peak, rss_growth = _peak_memory(lambda: extract_package(package))
    assert peak < 64 << 20 and rss_growth < 200 << 20
    assert [pair.key for pair in result.pairs] == ["PMC1000009_F2_0"]  # the member after the bomb is still read
    assert ("member", "member_too_large") in reasons(result) and ("figure", "missing_image") in reasons(result)


def test_package_cap_stops_an_archive_that_inflates_past_it(tmp_path):
    package = nxml_bomb_package(tmp_path)
    config = ExtractConfig(max_package_bytes=1 << 30)
    result, peak, _ = _peak_memory(lambda: extract_package(package, config))
    assert peak < 64 << 20
    assert result.article is None and result.pairs == []
    assert {("package", "package_too_large"), ("package", "no_nxml")} <= reasons(result)


def test_member_cap_uses_header_sizes_and_kept_bytes_count(tmp_path):
    package = write_tar_gz(
        tmp_path / "PMC7.tar.gz",
        [Member("PMC7/a.nxml", article_xml("PMC7")), Member("PMC7/f1.jpg", jpeg_bytes((400, 400)))],
    )
    small = open_package(package, PackageLimits(max_member_bytes=5_000))
    assert small.names == ["PMC7/a.nxml"]
    assert [error.reason for error in small.problems] == ["member_too_large"]
    tight = open_package(package, PackageLimits(max_package_bytes=3_000))
    assert [error.reason for error in tight.problems] == ["package_too_large"]


def test_read_capped_never_reads_past_its_limit():
    class Endless(io.RawIOBase):
        def readable(self):
            return True

        def readinto(self, buffer):
            buffer[:] = b"\0" * len(buffer)
            return len(buffer)

    assert len(read_capped(io.BufferedReader(Endless()), 3_000_000, chunk=1 << 16)) == 3_000_000


def test_truncated_archive_keeps_what_came_before_the_cut(tmp_path):
    whole = write_tar_gz(
        tmp_path / "PMC8.tar.gz",
        [Member("PMC8/a.nxml", article_xml("PMC8")), Member("PMC8/f1.jpg", jpeg_bytes((800, 800), seed=4))],
    )
    cut = tmp_path / "PMC8cut.tar.gz"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 2 // 3])
    result = extract_package(cut)
    assert result.article is not None and result.pairs == []
    assert ("package", "corrupt_archive") in reasons(result)


def test_folder_links_are_recorded_not_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "f1.jpg").write_bytes(jpeg_bytes())
    folder = tmp_path / "PMC9"
    folder.mkdir()
    (folder / "a.nxml").write_bytes(article_xml("PMC9"))
    os.symlink(outside / "f1.jpg", folder / "f1.jpg")
    os.symlink(outside, folder / "images")
    result = extract_package(folder)
    assert result.pairs == []
    assert reasons(result) == {("member", "link_member"), ("figure", "missing_image")}
    assert len([e for e in result.errors if e.reason == "link_member"]) == 2


def test_missing_source_is_an_error_not_an_exception(tmp_path):
    result = extract_package(tmp_path / "PMC404.tar.gz")
    assert result.article is None and ("package", "package_not_found") in reasons(result)
    assert result.pmcid == "PMC404"


def test_figure_pairs_captions_thumbnails_and_sample_json(tmp_path):
    figs = (Fig("F1", ("f1a", "f1b")), Fig("F2", ("f2",), caption=None), Fig("F3", ("f3",)), Fig("F4", ()))
    body = '<p>See <xref ref-type="fig" rid="F1 F3">Figs 1 and 3</xref>.</p>'
    package = write_tar_gz(
        tmp_path / "PMC10.tar.gz",
        [
            Member("PMC10/a.nxml", article_xml("PMC10", figs=figs, body=body)),
            Member("PMC10/f1a.jpg", jpeg_bytes(seed=1)),
            Member("PMC10/f1a.gif", image_bytes(Image.new("P", (32, 24)), "GIF")),
            Member("PMC10/f1b.png", image_bytes(Image.new("RGB", (40, 40), "blue"), "PNG")),
            Member("PMC10/f2.jpg", jpeg_bytes(seed=2)),
            Member("PMC10/f3.jpg", jpeg_bytes((64, 15), seed=3)),
            Member("PMC10/a.pdf", b"%PDF-1.4"),
        ],
    )
    result = extract_package(package)
    assert [pair.key for pair in result.pairs] == ["PMC10_F1_0", "PMC10_F1_1"]
    first, second = result.pairs
    assert first.caption == second.caption == "A caption."
    assert first.row["image_file_name"] == "PMC10/f1a.jpg" and first.row["reencoded"] is False
    assert second.row["source_format"] == "PNG" and second.row["reencoded"] is True
    assert first.sample_json["image_set"] == ["PMC10_F1_0", "PMC10_F1_1"]
    assert first.sample_json["image_context"] == ["See Figs 1 and 3."]
    assert first.row["graphic_count"] == 2 and second.row["graphic_index"] == 1
    assert reasons(result) == {("figure", "no_caption"), ("image", "too_small"), ("figure", "no_graphic")}
    assert result.article["figure_count"] == 4 and result.article["pair_count"] == 2
    json.dumps(first.sample_json)  # plain JSON types only


def test_pmcid_and_licence_fallbacks(tmp_path):
    package = write_tar_gz(
        tmp_path / "old_issue_2010.tar.gz",
        [Member("Journal_2010/a.nxml", article_xml(None)), Member("Journal_2010/f1.jpg", jpeg_bytes())],
    )
    anonymous = extract_package(package)
    assert anonymous.article is None and ("parse", "no_pmcid") in reasons(anonymous)
    row = {"pmcid": "PMC77", "license": "CC BY-NC-SA", "citation": "J. 2010;1:1", "pmid": "55"}
    named = extract_package(package, file_list_row=row)
    assert named.pmcid == "PMC77" and named.article["license"] == "CC BY-NC-SA"
    assert named.article["license_group"] == "noncommercial" and named.article["pmid"] == "55"
    assert named.pairs[0].sample_json["article_citation"] == "J. 2010;1:1"
    assert all(error.pmcid == "PMC77" for error in named.errors)


def test_config_is_validated_and_picklable():
    config = ExtractConfig(jpeg_quality=80)
    assert pickle.loads(pickle.dumps(config)) == config
    assert pickle.loads(pickle.dumps(extract_package)) is extract_package
    with pytest.raises(ValueError, match="jpeg_quality"):
        ExtractConfig(jpeg_quality=0)
    with pytest.raises(UserError, match="min_side"):
        ExtractConfig(min_side=0)
    with pytest.raises(UserError, match="max_members"):
        ExtractConfig(max_members=0)
    with pytest.raises(UserError, match="package_time_budget_s"):
        ExtractConfig(package_time_budget_s=0)


def test_plain_tar_is_read_too(tmp_path):
    path = tmp_path / "PMC11.tar"
    with tarfile.open(path, "w") as archive:
        for name, data in (("PMC11/a.nxml", article_xml("PMC11")), ("PMC11/f1.jpg", jpeg_bytes())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    assert [pair.key for pair in extract_package(path).pairs] == ["PMC11_F1_0"]


def test_rows_fill_exactly_the_catalog_schemas(tmp_path):
    schemas = Path(__file__).resolve().parent.parent / "data_catalog" / "schemas"
    figures = set(yaml.safe_load((schemas / "figures.yaml").read_text())["columns"])
    articles = set(yaml.safe_load((schemas / "articles.yaml").read_text())["columns"])
    errors = set(yaml.safe_load((schemas / "errors.yaml").read_text())["columns"])
    written_by_the_pipeline = {"shard", "duplicate_of"} | {
        f"{m}_{p}" for m in ("jpg", "txt", "json") for p in ("offset", "size")
    }
    result = extract_package(good_package(tmp_path))
    (pair,) = result.pairs
    assert set(pair.row) == figures - written_by_the_pipeline
    assert set(result.article) == articles
    assert pair.sample_json["article_reference_list"] == [] and pair.sample_json["article_mesh_terms"] == []
    broken = extract_package(HOSTILE_PACKAGES["symlinked_image"](tmp_path))
    assert all(set(vars(error)) == errors for error in broken.errors)


def test_a_folder_named_like_an_image_is_not_an_image(tmp_path):
    folder = tmp_path / "PMC12"
    folder.mkdir()
    (folder / "a.nxml").write_bytes(article_xml("PMC12"))
    (folder / "f1.jpg").mkdir()  # a folder where the image should be: never read as a file
    result = extract_package(folder)
    assert result.pairs == [] and ("figure", "missing_image") in reasons(result)


# ---------------------------------------------------------------------------------------------- header bombs


def test_a_million_empty_members_stop_at_the_member_cap_fast_and_small(tmp_path):
    package = member_bomb_package(tmp_path)
    assert package.stat().st_size < 6_000_000
    measured = measure_in_subprocess(
        f"r = extract_package({str(package)!r}); result = sorted({{(e.stage, e.reason, e.detail) for e in r.errors}})"
    )
    assert ["package", "too_many_members", "more than 10000 members"] in measured["result"]
    assert measured["seconds"] < 10 and measured["peak_rss_mb"] < 500, measured


def test_time_budget_stops_a_slow_package(tmp_path):
    package = member_bomb_package(tmp_path)
    started = time.monotonic()
    opened = open_package(package, PackageLimits(max_members=10**9, time_budget_s=0.2))
    assert time.monotonic() - started < 3
    assert [(p.stage, p.reason) for p in opened.problems] == [("package", "time_budget_exceeded")]
    result = extract_package(package, ExtractConfig(max_members=10**9, package_time_budget_s=0.2))
    assert ("package", "time_budget_exceeded") in reasons(result)


def test_member_cap_keeps_a_normal_package_and_counts_folder_entries(tmp_path):
    assert extract_package(good_package(tmp_path), ExtractConfig(max_members=3)).pairs
    assert ("package", "too_many_members") in reasons(
        extract_package(good_package(tmp_path), ExtractConfig(max_members=2))
    )
    folder = tmp_path / "PMC13"
    folder.mkdir()
    (folder / "a.nxml").write_bytes(article_xml("PMC13"))
    for i in range(20):
        (folder / f"x{i:02d}.txt").write_bytes(b"")
    opened = open_package(folder, PackageLimits(max_members=10))
    assert [(p.reason, p.detail) for p in opened.problems] == [("too_many_members", "more than 10 files")]


# ---------------------------------------------------------------------------------------------- keys and JSON


def test_ids_that_sanitise_alike_get_distinct_keys_and_others_keep_theirs(tmp_path):
    figs = (Fig("F1.a", ("f1",)), Fig("F1-a", ("f2",)), Fig("F2", ("f3",)))
    package = write_tar_gz(
        tmp_path / "PMC14.tar.gz",
        [
            Member("PMC14/a.nxml", article_xml("PMC14", figs=figs)),
            *(Member(f"PMC14/f{i}.jpg", jpeg_bytes(seed=i)) for i in (1, 2, 3)),
        ],
    )
    result = extract_package(package)
    keys = {pair.row["figure_id"]: pair.key for pair in result.pairs}
    assert set(keys) == {"F1.a", "F1-a", "F2"} and len(set(keys.values())) == 3
    assert keys["F2"] == "PMC14_F2_0"  # no collision: the key is unchanged
    assert keys["F1.a"].startswith("PMC14_F1-a-") and keys["F1-a"].startswith("PMC14_F1-a-")
    assert all("." not in key for key in keys.values())
    assert [pair.sample_json["image_set"] for pair in result.pairs] == [[key] for key in keys.values()]
    again = {pair.row["figure_id"]: pair.key for pair in extract_package(package).pairs}
    assert again == keys  # deterministic
    assert not {error.reason for error in result.errors}


def test_full_text_is_in_the_sample_json_only_when_asked(tmp_path):
    package = good_package(tmp_path)
    (plain,) = extract_package(package).pairs
    assert "article_text" not in plain.sample_json
    (full,) = extract_package(package, ExtractConfig(full_text_in_shards=True)).pairs
    assert full.sample_json["article_text"] == extract_package(package).article["text"]
    assert full.sample_json["article_text"]
    assert {k: v for k, v in full.sample_json.items() if k != "article_text"} == plain.sample_json
