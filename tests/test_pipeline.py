"""Extraction pipeline: planning, shards + catalog, resume after kill -9, incremental runs, Dask mode."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from workbench.acquire.state import download_state
from workbench.cli import main as cli_main
from workbench.extract.catalog import table_schema
from workbench.extract.pipeline import ExtractionConfig, run_extraction
from workbench.extract.planning import load_plan
from workbench.extract.records import ArticleResult, ExtractError, FigurePair, make_key
from workbench.extract.shards import shuffle_rank
from workbench.extract.units import raise_package_failure
from workbench.ustar import MemberLocation, read_member
from workbench.workspace import Workspace

REPO = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------------------------------ a fake extractor


def _jpeg(seed: int) -> bytes:
    image = Image.new("RGB", (24, 16), ((seed * 37) % 256, (seed * 91) % 256, (seed * 53) % 256))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


def fake_extract(source: Path, file_list_row: dict | None) -> ArticleResult:
    """Deterministic stand-in for extract_package: figures by PMCID number, shared images, errors, crashes."""
    pmcid = source.name.split(".")[0]
    number = int(pmcid[3:])
    if not source.exists():
        raise FileNotFoundError(source)
    if number % 11 == 0:
        raise RuntimeError(f"cannot parse {source.name}")
    license_name = (file_list_row or {}).get("license") or "CC BY"
    version = source.read_text() if source.stat().st_size else ""
    article = {
        "pmcid": pmcid,
        "pmid": str(number + 1000),
        "title": f"Article {number} {version}".strip(),
        "journal": f"Journal {number % 3}",
        "license": license_name,
        "license_group": "commercial",
        "abstract": "",
        "text": "body",
        "reference_count": 0,
        "figure_count": number % 4,
        "year": 2020,
    }
    pairs, errors = [], []
    for figure in range(number % 4):
        key = make_key(pmcid, f"F{figure + 1}", 0)
        jpg = _jpeg(0 if (number % 5 == 0 and figure == 0) else number * 10 + figure)
        caption = f"Figure {figure + 1} of {pmcid} {version}".strip()
        row = {
            "key": key,
            "pmcid": pmcid,
            "pmid": article["pmid"],
            "figure_id": f"F{figure + 1}",
            "figure_label": f"Figure {figure + 1}",
            "graphic_index": 0,
            "graphic_count": 1,
            "image_file_name": f"{pmcid}_f{figure}.jpg",
            "caption": caption,
            "caption_length": len(caption),
            "inline_references": [f"As shown in Figure {figure + 1}."],
            "inline_reference_count": 1,
            "width": 24,
            "height": 16,
            "image_sha256": hashlib.sha256(jpg).hexdigest(),
            "image_phash": "0" * 16,
            "source_format": "JPEG",
            "reencoded": False,
            "license": license_name,
            "license_group": "commercial",
            "article_title": article["title"],
            "article_journal": article["journal"],
            "article_year": 2020,
            "article_subjects": ["Research"],
            "article_keywords": [],
        }
        sample_json = {"pmcid": pmcid, "caption": caption, "license": license_name}
        pairs.append(FigurePair(key, jpg, caption, sample_json, row))
    if number % 7 == 0:
        errors.append(ExtractError(str(source), "figure", "no_caption", "fig F9", pmcid))
    return ArticleResult(str(source), pmcid, article, pairs, errors)


def make_mirror(root: Path, numbers: range | list[int]) -> list[Path]:
    paths = []
    for number in numbers:
        digest = hashlib.md5(str(number).encode()).hexdigest()
        path = root / "mirror" / "oa_package" / digest[:2] / digest[2:4] / f"PMC{number}.tar.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
        paths.append(path)
    return paths


def config(root: Path, **changes) -> ExtractionConfig:
    settings = {"workspace": root, "shard_size": 8, "workers": 0, "extractor": fake_extract, "progress": False}
    return ExtractionConfig(**(settings | changes))


def figures(root: Path) -> list[dict]:
    return pq.read_table(root / "catalog" / "figures.parquet").to_pylist()


def shard_members(root: Path) -> dict[str, list[str]]:
    members = {}
    for shard in sorted((root / "shards").glob("*.tar")):
        with tarfile.open(shard) as tar:
            members[shard.name] = tar.getnames()
    return members


def shard_bytes(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((root / "shards").glob("*.tar"))}


def expected_keys(numbers) -> set[str]:
    return {make_key(f"PMC{n}", f"F{f + 1}", 0) for n in numbers if n % 11 for f in range(n % 4)}


# ------------------------------------------------------------------------------------------------ tests


def test_extract_writes_shards_catalog_and_stats(tmp_path):
    numbers = range(100, 130)
    make_mirror(tmp_path, numbers)
    report = run_extraction(config(tmp_path))
    assert report.new_packages == 30 and report.units_run == report.new_units == 15 and not report.failed_units
    rows = figures(tmp_path)
    keys = [r["key"] for r in rows]
    assert keys == sorted(keys) and set(keys) == expected_keys(numbers) and len(keys) == len(set(keys))
    assert pq.read_schema(tmp_path / "catalog" / "figures.parquet").names == table_schema("figures").names
    sizes = json.loads((tmp_path / "shards" / "sizes.json").read_text())
    assert sum(sizes.values()) == len(rows) == report.pairs_written
    assert set(sizes) == {p.name for p in (tmp_path / "shards").glob("*.tar")}
    for name, members in shard_members(tmp_path).items():
        stats = json.loads((tmp_path / "shards" / name.replace(".tar", "_stats.json")).read_text())
        assert stats["pairs"] == sizes[name] == len(members) // 3
        assert stats["sha256"] == hashlib.sha256((tmp_path / "shards" / name).read_bytes()).hexdigest()
        shard_keys = [m.split(".")[0] for m in members[::3]]
        assert shard_keys == sorted(shard_keys, key=shuffle_rank)  # shuffled by key hash, not grouped by article
    for row in rows:
        shard = tmp_path / row["shard"]
        jpg = read_member(shard, MemberLocation(row["jpg_offset"], row["jpg_size"]))
        assert hashlib.sha256(jpg).hexdigest() == row["image_sha256"]
        assert read_member(shard, MemberLocation(row["txt_offset"], row["txt_size"])).decode() == row["caption"]
        assert (
            json.loads(read_member(shard, MemberLocation(row["json_offset"], row["json_size"])))["pmcid"]
            == row["pmcid"]
        )
    shared = sorted(r["key"] for r in rows if r["image_sha256"] == hashlib.sha256(_jpeg(0)).hexdigest())
    assert len(shared) > 1
    duplicates = {r["key"]: r["duplicate_of"] for r in rows if r["key"] in shared}
    assert duplicates == {shared[0]: None, **{key: shared[0] for key in shared[1:]}}
    assert report.catalog.duplicates == len(shared) - 1
    articles = pq.read_table(tmp_path / "catalog" / "articles.parquet").to_pylist()
    assert len(articles) == sum(1 for n in numbers if n % 11)
    assert all(a["package"].startswith("mirror/oa_package/") for a in articles)
    assert {a["pmcid"]: a["pair_count"] for a in articles} == {f"PMC{n}": n % 4 for n in numbers if n % 11}
    errors = pq.read_table(tmp_path / "catalog" / "errors.parquet").to_pylist()
    assert {(e["pmcid"], e["reason"]) for e in errors} == {
        *((f"PMC{n}", "extractor_failed") for n in numbers if n % 11 == 0),
        *((f"PMC{n}", "no_caption") for n in numbers if n % 7 == 0 and n % 11),
    }
    assert all(e["package"].startswith("mirror/") for e in errors)
    assert not list((tmp_path / "tmp" / "extract").glob("*")) if (tmp_path / "tmp" / "extract").exists() else True


def test_report_helpers_summarise_the_catalog(tmp_path):
    from workbench.extract.report import drops_by_reason, extraction_summary, pairs_grid_html

    numbers = range(100, 130)
    make_mirror(tmp_path, numbers)
    run_extraction(config(tmp_path))
    summary = extraction_summary(tmp_path)
    assert summary["pairs"] == summary["samples_in_shards"] == len(expected_keys(numbers))
    assert summary["articles"] == 28 and summary["exact_duplicates"] == summary["pairs"] - summary["unique_pairs"] > 0
    drops = drops_by_reason(tmp_path).to_dicts()
    assert [(d["stage"], d["reason"], d["count"]) for d in drops] == [
        ("figure", "no_caption", 4),
        ("package", "extractor_failed", 2),
    ]
    assert drops[1]["example"].startswith("RuntimeError: cannot parse PMC1")
    grid = pairs_grid_html(tmp_path, 5)
    assert grid.count('<img src="data:image/jpeg;base64,') == 5 and "As shown in Figure" in grid
    with pytest.raises(FileNotFoundError, match="run `workbench extract"):
        extraction_summary(tmp_path / "empty")


def test_rerun_after_completion_does_nothing(tmp_path, capsys):
    make_mirror(tmp_path, range(1, 9))
    run_extraction(config(tmp_path))
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file() and "tmp" not in p.parts}
    report = run_extraction(config(tmp_path))
    assert report.nothing_to_do and "nothing to do" in report.describe()
    after = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file() and "tmp" not in p.parts}
    assert after == before


def test_unfinished_units_are_redone_from_scratch(tmp_path):
    make_mirror(tmp_path / "a", range(200, 220))
    make_mirror(tmp_path / "b", range(200, 220))
    run_extraction(config(tmp_path / "a"))
    reference = shard_bytes(tmp_path / "a"), figures(tmp_path / "a")
    run_extraction(config(tmp_path / "b"))
    shards = tmp_path / "b" / "shards"
    # Simulate a kill at every possible point: a unit with no stats (tar renamed, parts renamed), garbage
    # scratch files, a truncated shard of a unit whose stats are missing.
    (shards / "000003_stats.json").unlink()
    (shards / "000004_stats.json").unlink()
    (shards / "000004.tar").write_bytes(b"garbage")
    scratch = tmp_path / "b" / "tmp" / "extract" / "000004.123.abc"
    scratch.mkdir(parents=True)
    (scratch / "spool.bin").write_bytes(b"x" * 100)
    report = run_extraction(config(tmp_path / "b"))
    assert report.units_run == 2 and report.new_units == 0
    assert (shard_bytes(tmp_path / "b"), figures(tmp_path / "b")) == reference
    assert not scratch.exists()


def test_incremental_packages_form_new_units_and_limit(tmp_path):
    make_mirror(tmp_path, range(300, 320))
    first = run_extraction(config(tmp_path, limit=7))
    assert first.new_packages == 7
    done = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "shards").glob("*.tar")}
    second = run_extraction(config(tmp_path))
    assert second.new_packages == 13
    make_mirror(tmp_path, range(320, 325))
    third = run_extraction(config(tmp_path))
    assert third.new_packages == 5 and third.units_run == third.new_units
    for name, mtime in done.items():
        assert (tmp_path / "shards" / name).stat().st_mtime_ns == mtime
    assert {r["key"] for r in figures(tmp_path)} == expected_keys(range(300, 325))
    planned = [p.pmcid for u in load_plan(Workspace.at(tmp_path)) for p in u.packages]
    assert len(planned) == len(set(planned)) == 25


def _downloads_table(root: Path, numbers, version: dict[int, str]) -> None:
    """`downloads` as acquisition writes it (its own CREATE statement), all done, `version` marks re-downloads."""
    from workbench.acquire.state import DownloadState

    with DownloadState(Workspace.at(root)) as state:
        state.con.execute("DELETE FROM downloads")
        for number in numbers:
            path = next((root / "mirror").rglob(f"PMC{number}.tar.gz")).relative_to(root / "mirror")
            state.con.execute(
                "INSERT INTO downloads (pmcid, file, citation, pmid, license, license_group, last_updated, "
                "status, attempts, sha256, stale, updated_at) VALUES (?, ?, 'Cit', ?, 'CC BY-NC', "
                "'noncommercial', '2020-01-01 00:00:00', 'done', 1, ?, ?, '2020-01-01 00:00:00')",
                [f"PMC{number}", str(path), str(number), version.get(number, "v1"), number in version],
            )


def test_downloads_table_drives_licences_and_re_extracts_stale_articles(tmp_path):
    numbers = range(400, 412)
    paths = make_mirror(tmp_path, numbers)
    make_mirror(tmp_path, [999])  # on disk but not in `downloads`: ignored
    _downloads_table(tmp_path, numbers, {})
    run_extraction(config(tmp_path))
    rows = figures(tmp_path)
    assert {r["license"] for r in rows} == {"CC BY-NC"} and "PMC999" not in {r["pmcid"] for r in rows}
    old = {r["key"]: r["shard"] for r in rows if r["pmcid"] == "PMC403"}
    assert old
    paths[3].write_text("v2")  # acquisition re-downloaded a newer version
    _downloads_table(tmp_path, numbers, {403: "v2"})
    report = run_extraction(config(tmp_path))
    assert report.new_packages == 1 and report.units_run == 1
    rows = figures(tmp_path)
    keys = [r["key"] for r in rows]
    assert len(keys) == len(set(keys)) and set(keys) == expected_keys(numbers)
    new = [r for r in rows if r["pmcid"] == "PMC403"]
    assert {r["key"] for r in new} == set(old) and all(r["shard"] not in old.values() for r in new)
    assert all(r["caption"].endswith("v2") for r in new)
    articles = pq.read_table(tmp_path / "catalog" / "articles.parquet").to_pylist()
    assert [a["title"] for a in articles if a["pmcid"] == "PMC403"] == ["Article 403 v2"]
    state = download_state(tmp_path)
    assert state.filter(state["pmcid"] == "PMC403")["stale"].to_list() == [False]
    assert run_extraction(config(tmp_path)).nothing_to_do


def test_mesh_terms_are_filled_from_the_pubmed_table(tmp_path):
    make_mirror(tmp_path, range(501, 504))
    run_extraction(config(tmp_path))
    pubmed = tmp_path / "catalog" / "pubmed.parquet"
    pq.write_table(pa.table({"pmid": ["1501"], "mesh_terms": [["Humans", "Neoplasms"]]}), pubmed)
    report = run_extraction(config(tmp_path))  # published MeSH makes the catalog out of date
    assert report.catalog.mesh_filled and report.units_run == 0
    pq.write_table(pa.table({"pmid": ["1501"], "mesh_terms": [["Humans", "Mice"]]}), pubmed)  # same row count
    report = run_extraction(config(tmp_path))  # the content changed, so the catalog follows
    assert report.catalog.mesh_filled and report.units_run == 0
    mesh = {r["pmcid"]: r["article_mesh_terms"] for r in figures(tmp_path)}
    assert mesh == {"PMC501": ["Humans", "Mice"], "PMC502": [], "PMC503": []}


def test_failing_unit_is_reported_and_retried(tmp_path):
    make_mirror(tmp_path, [11, 12, 13, 14])  # PMC11 makes the fake extractor raise
    report = run_extraction(config(tmp_path, shard_size=4, on_package_error=raise_package_failure))
    assert report.failed_units and "cannot parse" in report.describe()
    assert not (tmp_path / "shards" / "000000_stats.json").exists()
    report = run_extraction(config(tmp_path, shard_size=4))
    assert report.units_run == 1 and not report.failed_units


def test_dask_local_cluster_and_scheduler_address_match_in_process_run(tmp_path):
    cloudpickle = pytest.importorskip("cloudpickle")
    from distributed import LocalCluster

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    for name in "abc":
        make_mirror(tmp_path / name, range(600, 616))
    run_extraction(config(tmp_path / "a"))
    report = run_extraction(config(tmp_path / "b", workers=2))
    assert report.units_run == 8 and not report.failed_units
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        report = run_extraction(config(tmp_path / "c", workers=None, scheduler=cluster.scheduler_address))
    assert report.units_run == 8 and not report.failed_units
    for name in "bc":
        assert shard_bytes(tmp_path / name) == shard_bytes(tmp_path / "a")
        assert figures(tmp_path / name) == figures(tmp_path / "a")


def test_cli_bad_input_exits_2(tmp_path, capsys):
    assert cli_main(["extract", "--workspace", str(tmp_path), "--packages", str(tmp_path / "nope.tar.gz")]) == 2
    assert "package path not found" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("x")
    assert cli_main(["extract", "--workspace", str(tmp_path), "--packages", str(tmp_path / "notes.txt")]) == 2
    with pytest.raises(SystemExit):
        cli_main(["extract", "--workspace", str(tmp_path), "--workers", "-1"])


@pytest.fixture(scope="module")
def sample_mirror(tmp_path_factory) -> Path:
    """40 generated PMC-like packages (real JATS, real images), listed in oa_file_list.csv."""
    from workbench.mirror import build_sample_mirror

    out = tmp_path_factory.mktemp("sample") / "mirror"
    build_sample_mirror(out, 40, seed=1, progress=False)
    return out


def _cli(root: Path, *extra: str) -> list[str]:
    command = ["extract", "--workspace", str(root), "--workers", "0", "--shard-size", "8", "--no-progress", *extra]
    return [sys.executable, "-m", "workbench.cli", *command]


def _catalog_tables(root: Path) -> dict[str, list[dict]]:
    return {t: pq.read_table(root / "catalog" / f"{t}.parquet").to_pylist() for t in ("figures", "articles", "errors")}


def test_kill_9_and_rerun_gives_the_uninterrupted_result(tmp_path, sample_mirror):
    for name in ("killed", "clean"):
        shutil.copytree(sample_mirror, tmp_path / name / "mirror")
    assert cli_main(_cli(tmp_path / "clean")[3:]) == 0
    process = subprocess.Popen(_cli(tmp_path / "killed"), cwd=REPO, stdout=subprocess.DEVNULL)
    shards = tmp_path / "killed" / "shards"
    deadline = time.time() + 60
    while not (shards / "000002_stats.json").exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.005)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (shards / "000019_stats.json").exists(), "the run finished before it was killed"
    rerun = subprocess.run(_cli(tmp_path / "killed"), cwd=REPO, capture_output=True, text=True, check=True)
    assert "planned 0 new packages" in rerun.stdout
    clean, killed = _catalog_tables(tmp_path / "clean"), _catalog_tables(tmp_path / "killed")
    keys = [row["key"] for row in killed["figures"]]
    assert len(keys) == len(set(keys)) == len(clean["figures"]) > 100
    assert set(keys) == {row["key"] for row in clean["figures"]}
    assert killed == clean
    assert shard_bytes(tmp_path / "killed") == shard_bytes(tmp_path / "clean")
    assert (shards / "sizes.json").read_text() == (tmp_path / "clean" / "shards" / "sizes.json").read_text()
    members = [m for names in shard_members(tmp_path / "killed").values() for m in names]
    assert len(members) == len(set(members)) == 3 * len(keys)
    leftovers = [p.name for p in (tmp_path / "killed").rglob("*") if p.is_file() and ".tmp" in p.name]
    assert not leftovers and not list((tmp_path / "killed" / "tmp").rglob("*"))
    again = subprocess.run(_cli(tmp_path / "killed"), cwd=REPO, capture_output=True, text=True, check=True)
    assert again.stdout.strip().startswith("nothing to do")


def test_real_packages_old_and_new_layouts_and_folders(tmp_path, realdata):
    assert cli_main(_cli(tmp_path, "--packages", str(realdata / "pmc_packages"))[3:]) == 0
    tables = _catalog_tables(tmp_path)
    pairs = {a["pmcid"]: a["pair_count"] for a in tables["articles"]}
    assert len(pairs) == 9 and pairs["PMC11518443"] == pairs["PMC3040697"] == 0 and pairs["PMC3231133"] > 0
    assert (
        sum(pairs.values())
        == len(tables["figures"])
        == sum(json.loads((tmp_path / "shards" / "sizes.json").read_text()).values())
    )
    for row in tables["figures"]:
        jpg = read_member(tmp_path / row["shard"], MemberLocation(row["jpg_offset"], row["jpg_size"]))
        assert hashlib.sha256(jpg).hexdigest() == row["image_sha256"] and jpg[:2] == b"\xff\xd8"


def test_extractor_settings_pass_through_a_partial(tmp_path, realdata):
    from functools import partial

    from workbench.extract.article import ExtractConfig, extract_package

    strict = partial(extract_package, config=ExtractConfig(min_side=600))
    package = realdata / "pmc_packages" / "PMC3231133.tar.gz"
    report = run_extraction(config(tmp_path, packages=(package,), extractor=strict))
    errors = pq.read_table(tmp_path / "catalog" / "errors.parquet").to_pylist()
    assert report.pairs_written < 15 and {e["reason"] for e in errors} == {"too_small"}
    assert all(e["package"] == str(package.resolve()) and e["pmcid"] == "PMC3231133" for e in errors)
