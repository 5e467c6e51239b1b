"""Catalog benchmark: filter latency on a 24M-row figures catalog, BM25 on a 1M-caption slice, subset throughput.

Generates once (cached under ~/.cache/biomedica-workbench/bench, or --cache-dir) a figures.parquet with
realistic column distributions (DuckDB range() + hashing: Zipf-like journals, words and concepts, recent
years dominant, ~4 figures per article, 3% duplicate images), materialises it
with `refresh_catalog` (the production path), then measures p50/p95 latency of typical questions through
the public API against Polars scanning the same Parquet (and a plain DuckDB view over it) in the same run.
Subset materialisation is measured in MB/s of shard bytes against a tarfile re-pack of the same samples.
The generated Parquet is laid out as one extraction unit (part + manifest); a synthetic current clustering
(--clusters) and a new unit of --increment figures then enter through the incremental refresh, timed against the
last full build of the base; the cache's bytes (root + base files) are compared with the Parquet's.

    .venv/bin/python benchmarks/catalog.py                     # 24M rows (first run generates: minutes)
    .venv/bin/python benchmarks/catalog.py --rows 2000000      # quicker look
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import statistics
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import catalog_labels  # noqa: E402 - benchmarks/catalog_labels.py, beside this file
import catalog_text  # noqa: E402

from workbench.catalog import FigureFilter, open_catalog, refresh_catalog  # noqa: E402
from workbench.catalog.layers import MANIFEST  # noqa: E402
from workbench.catalog.stats import count_by  # noqa: E402
from workbench.catalog.subset import SubsetSpec, materialise_subset  # noqa: E402
from workbench.cluster.assign import assignments_path, current_clustering  # noqa: E402
from workbench.extract.catalog import Superseded, consolidate, part_path, rows_to_table  # noqa: E402
from workbench.fileio import read_json, write_json_atomically  # noqa: E402
from workbench.ustar import ShardWriter  # noqa: E402
from workbench.workspace import Workspace  # noqa: E402

GENERATOR_VERSION = 3  # 3: annotations in WS/state/annotations.sqlite (no longer written; labels: catalog_labels)
COMMON = ("the", "of", "and", "in", "with", "a", "to", "at", "from", "for", "after", "by", "on", "are", "is")
TERMS = (
    "cells",
    "tumour",
    "tumor",
    "mice",
    "expression",
    "staining",
    "scale",
    "bar",
    "section",
    "panel",
    "control",
    "treated",
    "fluorescence",
    "microscopy",
    "representative",
    "images",
    "patient",
    "lesion",
    "ct",
    "mri",
    "scan",
    "brain",
    "liver",
    "kidney",
    "heart",
    "lung",
    "bone",
    "tissue",
    "protein",
    "gene",
    "mrna",
    "western",
    "blot",
    "analysis",
    "quantification",
    "mean",
    "sd",
    "sem",
    "significant",
    "difference",
    "groups",
    "days",
    "weeks",
    "hours",
    "dose",
    "concentration",
    "survival",
    "curve",
    "kaplan",
    "meier",
    "ratio",
    "hazard",
    "regression",
    "model",
    "network",
    "pathway",
    "signalling",
    "receptor",
    "antibody",
    "immunohistochemistry",
    "histology",
    "hematoxylin",
    "eosin",
    "arrow",
    "arrowheads",
    "indicate",
    "magnification",
    "original",
    "zebrafish",
    "embryo",
    "larvae",
    "neurons",
    "astrocytes",
    "microglia",
    "macrophages",
    "lymphocytes",
    "cd4",
    "cd8",
    "il-6",
    "tnf",
    "p53",
    "apoptosis",
    "proliferation",
    "migration",
    "invasion",
    "wound",
    "healing",
    "assay",
    "flow",
    "cytometry",
    "gating",
    "strategy",
    "sequencing",
    "reads",
    "alignment",
    "phylogenetic",
    "tree",
    "species",
    "bacteria",
    "virus",
    "infection",
    "vaccine",
    "response",
    "serum",
    "plasma",
    "blood",
    "urine",
    "sample",
    "chest",
    "radiograph",
    "ultrasound",
    "doppler",
    "angiography",
    "endoscopy",
    "fundus",
    "retina",
    "optical",
    "coherence",
    "tomography",
    "pet",
    "spect",
    "uptake",
    "contrast",
    "enhanced",
    "axial",
    "coronal",
    "sagittal",
    "weighted",
    "t1",
    "t2",
    "flair",
    "diffusion",
    "hyperintense",
    "mass",
    "nodule",
    "cyst",
    "fracture",
)

# One statement generates every column of data_catalog/schemas/figures.yaml, in order.
GENERATE_FIGURES = """
COPY (
WITH base AS (
    SELECT i, i // 4 AS a, hash(i // 4, 1) % 1000 / 1000.0 AS u_year, hash(i // 4, 2) % 100 AS u_licence
    FROM range($start, $start + $rows) AS t(i)
), article AS (
    SELECT *,
        CASE WHEN u_licence < 45 THEN 'CC BY 4.0' WHEN u_licence < 55 THEN 'CC BY' WHEN u_licence < 58 THEN 'CC0'
             WHEN u_licence < 78 THEN 'CC BY-NC 4.0' WHEN u_licence < 85 THEN 'CC BY-NC-ND 4.0'
             ELSE 'NO-CC CODE' END AS license,
        (2000 + floor(25 * sqrt(u_year)))::INTEGER AS year,
        'PMC' || (1000000 + a)::VARCHAR AS pmcid,
        CASE WHEN i % 33 = 7 THEN i - 1 ELSE i END AS image_of
    FROM base
)
SELECT
    pmcid || '_F' || (i % 4 + 1)::VARCHAR || '_0' AS key,
    pmcid,
    (20000000 + a)::VARCHAR AS pmid,
    '10.1000/bench.' || a::VARCHAR AS doi,
    'F' || (i % 4 + 1)::VARCHAR AS figure_id,
    'Figure ' || (i % 4 + 1)::VARCHAR AS figure_label,
    0::INTEGER AS graphic_index,
    1::INTEGER AS graphic_count,
    pmcid || '_f' || (i % 4 + 1)::VARCHAR || '.jpg' AS image_file_name,
    caption,
    length(caption)::INTEGER AS caption_length,
    CASE WHEN hash(i, 3) % 10 < 6
         THEN ['As shown in Figure ' || (i % 4 + 1)::VARCHAR || ', ' || array_to_string(list_transform(
                 range((8 + hash(i, 4) % 12)::BIGINT), j -> $vocab[1 + floor(len($vocab) * pow(hash(i, j, 5) % 100000
                 / 100000.0, 3))::BIGINT]), ' ') || '.']
         ELSE []::VARCHAR[] END AS inline_references,
    CASE WHEN hash(i, 3) % 10 < 6 THEN 1 ELSE 0 END::INTEGER AS inline_reference_count,
    'shards/' || lpad((i // 10000)::VARCHAR, 6, '0') || '.tar' AS shard,
    ((i % 10000) * 160000 + 512)::BIGINT AS jpg_offset,
    (20000 + hash(i, 6) % 130000)::BIGINT AS jpg_size,
    ((i % 10000) * 160000 + 151552)::BIGINT AS txt_offset,
    length(caption)::BIGINT AS txt_size,
    ((i % 10000) * 160000 + 155648)::BIGINT AS json_offset,
    (200 + hash(i, 7) % 300)::BIGINT AS json_size,
    round(exp(5.3 + 2.7 * (hash(i, 8) % 1000 / 1000.0)))::INTEGER AS width,
    round(exp(5.1 + 2.6 * (hash(i, 9) % 1000 / 1000.0)))::INTEGER AS height,
    md5(image_of::VARCHAR) || md5((image_of + 1)::VARCHAR) AS image_sha256,
    substr(md5(image_of::VARCHAR || 'p'), 1, 16) AS image_phash,
    CASE WHEN hash(i, 10) % 100 < 80 THEN 'JPEG' WHEN hash(i, 10) % 100 < 92 THEN 'PNG'
         WHEN hash(i, 10) % 100 < 97 THEN 'TIFF' ELSE 'GIF' END AS source_format,
    hash(i, 10) % 100 >= 80 AS reencoded,
    CASE WHEN image_of <> i THEN pmcid || '_F' || ((i - 1) % 4 + 1)::VARCHAR || '_0' END AS duplicate_of,
    license,
    CASE WHEN u_licence < 58 THEN 'commercial' WHEN u_licence < 85 THEN 'noncommercial' ELSE 'other' END
        AS license_group,
    title AS article_title,
    'Journal of ' || $vocab[1 + floor(len($vocab) * pow(hash(a, 11) % 100000 / 100000.0, 3))::BIGINT] || ' '
        || (hash(a, 12) % 40)::VARCHAR AS article_journal,
    make_date(year, 1 + (hash(a, 13) % 12)::INTEGER, 1 + (hash(a, 14) % 28)::INTEGER) AS article_date,
    year::INTEGER AS article_year,
    (['research-article', 'research-article', 'research-article', 'research-article', 'research-article',
      'review-article', 'case-report', 'brief-report', 'letter', 'other'])[(1 + hash(a, 15) % 10)::BIGINT]
        AS article_type,
    ['Subject ' || (hash(a, 16) % 50)::VARCHAR] AS article_subjects,
    list_transform(range((hash(a, 17) % 6)::BIGINT), j -> 'keyword ' || (floor(5000 * pow(hash(a, j, 18) % 100000
        / 100000.0, 2)))::VARCHAR) AS article_keywords,
    list_transform(range((hash(a, 19) % 9)::BIGINT), j -> 'MeSH ' || (floor(3000 * pow(hash(a, j, 20) % 100000
        / 100000.0, 2)))::VARCHAR) AS article_mesh_terms
FROM (
    SELECT *,
        'Figure ' || (i % 4 + 1)::VARCHAR || '. ' || array_to_string(list_transform(
            range((8 + hash(i, 21) % 52)::BIGINT),
            j -> $vocab[1 + floor(len($vocab) * pow(hash(i, j, 22) % 100000 / 100000.0, 3))::BIGINT]), ' ')
            || '.' AS caption,
        array_to_string(list_transform(range((6 + hash(a, 23) % 10)::BIGINT), j -> $vocab[1 + floor(len($vocab)
            * pow(hash(a, j, 24) % 100000 / 100000.0, 3))::BIGINT]), ' ') AS title
    FROM article
)
) TO '{target}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880)
"""


def vocabulary() -> list[str]:
    """~6,200 tokens, frequent first: common words, biomedical terms, then a long tail of rarer pseudo-terms."""
    rng = random.Random(0)
    syllables = (
        "neu",
        "ro",
        "car",
        "dio",
        "my",
        "o",
        "cyt",
        "path",
        "gen",
        "ic",
        "lym",
        "pho",
        "hep",
        "at",
        "nephr",
        "os",
        "derm",
        "al",
        "vas",
        "cul",
        "ar",
        "fib",
        "bla",
        "st",
        "oma",
        "itis",
        "ase",
        "in",
    )
    tail: set[str] = set()
    while len(tail) < 6000:
        tail.add("".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))))
    return list(COMMON) + list(TERMS) + sorted(tail, key=lambda w: (rng.random(), w))


def _say(text: str) -> None:
    print(text, flush=True)


def _latency(run: Callable[[], object], repeat: int) -> tuple[float, float, object]:
    result = run()  # warm-up (also the value reported)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    times.sort()
    return statistics.median(times) * 1000, times[min(len(times) - 1, round(0.95 * (len(times) - 1)))] * 1000, result


def generate_catalog(folder: Path, rows: int, memory_limit: str, clusters: int) -> Workspace:
    """WS with catalog/figures.parquet and a synthetic current clustering of `clusters`, materialised; cached by
    parameters."""
    workspace = Workspace.at(folder / "ws")
    marker = folder / "generated.json"
    wanted = {"rows": rows, "version": GENERATOR_VERSION}
    if not (marker.exists() and json.loads(marker.read_text()) == wanted):
        shutil.rmtree(folder, ignore_errors=True)
        workspace.catalog_dir.mkdir(parents=True)
        started = time.perf_counter()
        target = workspace.catalog_dir / "figures.parquet"
        with duckdb.connect(config={"memory_limit": memory_limit, "preserve_insertion_order": True}) as connection:
            statement = GENERATE_FIGURES.format(target=str(target).replace("'", "''"))
            connection.execute(statement, {"start": 0, "rows": rows, "vocab": vocabulary()})
        size = target.stat().st_size / 1e9
        _say(f"  generated {rows:,} rows in {time.perf_counter() - started:.0f} s ({size:.2f} GB Parquet)")
        marker.write_text(json.dumps(wanted))
    lay_out_as_unit(workspace)
    catalog_labels.write_synthetic_clustering(workspace, clusters, memory_limit)  # before the base: its column
    started = time.perf_counter()
    report = refresh_catalog(workspace, search_index=False, progress=True, memory_limit=memory_limit)
    if report.rebuilt:
        seconds = time.perf_counter() - started
        if "figures" in report.rebuilt and report.incremental_rows is None:
            (folder / "full_rebuild.json").write_text(json.dumps({"rows": report.figures, "seconds": seconds}))
        _say(
            f"  refresh_catalog ({'incremental' if report.incremental_rows is not None else 'full build'}): "
            f"{seconds:.0f} s; {report.describe()}; cache {cache_bytes(workspace) / 1e9:.2f} GB"
        )
    return workspace


def lay_out_as_unit(workspace: Workspace) -> None:
    """Present the generated figures.parquet as extraction does: the part of one complete unit + the manifest."""
    manifest = workspace.catalog_dir / MANIFEST
    if manifest.exists():
        return
    part = part_path(workspace, "figures", "bench-000000")
    part.parent.mkdir(parents=True, exist_ok=True)
    if not part.exists():
        os.link(workspace.catalog_dir / "figures.parquet", part)  # the same bytes, no copy
    write_json_atomically({"units": ["bench-000000"], "superseded": [], "pubmed": None}, manifest)


def verify_full_rebuild(workspace: Workspace, memory_limit: str) -> tuple[bool, float]:
    """What `extract` does when it publishes (consolidate figures.parquet from the units' parts; the benchmark's
    increments skip it), then `catalog refresh --full`: the counts of the benchmark's questions must equal the
    incremental cache's. Returns (equal, full rebuild seconds)."""
    questions = [
        FigureFilter(),
        FigureFilter(license_groups=("commercial",), year_from=2015, year_to=2020, min_width=512, min_height=512),
        FigureFilter(where="width * height > 4e6 AND license_group = 'commercial'"),
        FigureFilter(concepts=(catalog_labels.CONCEPT,)),
        FigureFilter(license_groups=("commercial",), year_from=2015, year_to=2020, concepts=(catalog_labels.CONCEPT,)),
        FigureFilter(panel_types=("single",)),
    ]

    def answers() -> list:
        with open_catalog(workspace, refresh=False) as catalog:
            by_year = count_by(catalog, "article_year", None, top=100)
            return [catalog.count(question) for question in questions] + [sorted(by_year, key=str)]

    before = answers()
    manifest = read_json(workspace.catalog_dir / MANIFEST)
    for unit in manifest["units"]:  # the generator writes figures only: empty articles and errors parts
        for table in ("articles", "errors"):
            if not part_path(workspace, table, unit).exists():
                part_path(workspace, table, unit).parent.mkdir(parents=True, exist_ok=True)
                pq.write_table(rows_to_table(table, []), part_path(workspace, table, unit))
    started = time.perf_counter()
    consolidate(workspace, manifest["units"], [Superseded(u, pmcid) for u, pmcid in manifest.get("superseded") or []])
    _say(f"  consolidated figures.parquet from {len(manifest['units'])} units in {time.perf_counter() - started:.0f} s")
    started = time.perf_counter()
    refresh_catalog(workspace, search_index=False, progress=True, memory_limit=memory_limit, full=True)
    full = time.perf_counter() - started
    after = answers()
    for question, first, second in zip([*questions, "group by year"], before, after, strict=True):
        if first != second:
            _say(f"  DIFFERS: {question}: incremental {first} vs full {second}")
    return before == after, full


def cache_bytes(workspace: Workspace) -> int:
    """The read cache a reader opens: the root file and the base file it names. (The previous base stays until the
    next refresh, for readers that still hold it: transient, not counted.)"""
    with duckdb.connect(str(workspace.database), read_only=True) as connection:
        (base,) = connection.execute("SELECT fingerprint FROM catalog_state WHERE name = 'base'").fetchone()
    files = [workspace.database, workspace.root / base]
    return sum(path.stat().st_size for path in files if path.is_file())


def parquet_bytes(workspace: Workspace) -> int:
    """The Parquet the cache serves: every file under WS/catalog (hard links counted once)."""
    seen: dict[tuple[int, int], int] = {}
    for path in workspace.catalog_dir.rglob("*.parquet"):
        stat = path.stat()
        seen[(stat.st_dev, stat.st_ino)] = stat.st_size
    return sum(seen.values())


def add_increment(workspace: Workspace, figures: int, memory_limit: str) -> tuple[int, float]:
    """A new extraction unit of `figures` rows (fresh keys), published like `extract` does, then refreshed."""
    manifest = read_json(workspace.catalog_dir / MANIFEST)
    start = max(int(unit.split("-")[1]) for unit in manifest["units"]) + 1
    unit = f"bench-{start:06d}"
    target = part_path(workspace, "figures", unit)
    with duckdb.connect(config={"memory_limit": memory_limit}) as connection:
        statement = GENERATE_FIGURES.format(target=str(target).replace("'", "''"))
        connection.execute(statement, {"start": 10**9 + start * figures, "rows": figures, "vocab": vocabulary()})
    manifest["units"] = sorted([*manifest["units"], unit])
    write_json_atomically(manifest, workspace.catalog_dir / MANIFEST)
    with open_catalog(workspace, refresh=False) as catalog:
        before = catalog.count()
    started = time.perf_counter()
    report = refresh_catalog(workspace, search_index=False, progress=False, memory_limit=memory_limit)
    seconds = time.perf_counter() - started
    if report.incremental_rows is None or report.figures != before + figures:
        raise RuntimeError(f"the increment was not applied incrementally: {report.describe()}")
    _say(f"  incremental refresh of +{figures:,} figures (unit {unit}): {seconds:.1f} s; {report.describe()}")
    return before, seconds


def assign_increment(workspace: Workspace, clusters: int, memory_limit: str) -> float:
    """What `workbench cluster assign` does after an increment: the figures without a cluster join the current
    clustering (its assignments file rewritten with them), entered by a refresh; returns the refresh's seconds."""
    name = current_clustering(workspace)
    target = assignments_path(workspace, name)
    scratch = target.with_name(target.name + ".next")
    with duckdb.connect(config={"memory_limit": memory_limit}) as connection:
        with open_catalog(workspace, refresh=False) as catalog:
            keys = [key for (key,) in catalog.execute("SELECT key FROM figures WHERE cluster_id IS NULL").fetchall()]
        connection.register("new_keys", pl.DataFrame({"key": keys}, schema={"key": pl.String}).to_arrow())
        connection.execute(
            f"COPY (SELECT * FROM read_parquet($path) UNION ALL SELECT key, (hash(key, 99) % {clusters})::INTEGER, "
            f"0.5::FLOAT FROM new_keys) TO '{str(scratch).replace(chr(39), chr(39) * 2)}' (FORMAT parquet)",
            {"path": str(target)},
        )
    os.replace(scratch, target)
    started = time.perf_counter()
    report = refresh_catalog(workspace, search_index=False, progress=False, memory_limit=memory_limit)
    seconds = time.perf_counter() - started
    _say(f"  cluster assign of {len(keys):,} new figures entered in {seconds:.1f} s; {report.describe()}")
    return seconds


def generate_slice(folder: Path, source: Workspace, rows: int, memory_limit: str) -> Workspace:
    """The first `rows` figures as their own workspace, with the BM25 index built by refresh_catalog."""
    workspace = Workspace.at(folder / "ws")
    marker = folder / "generated.json"
    wanted = {"rows": rows, "version": GENERATOR_VERSION, "source": str(source.root)}
    if not (marker.exists() and json.loads(marker.read_text()) == wanted):
        shutil.rmtree(folder, ignore_errors=True)
        workspace.catalog_dir.mkdir(parents=True)
        target = workspace.catalog_dir / "figures.parquet"
        with duckdb.connect(config={"memory_limit": memory_limit}) as connection:
            connection.execute(
                f"COPY (SELECT * FROM read_parquet($path) LIMIT $rows) TO "
                f"'{str(target).replace(chr(39), chr(39) * 2)}' (FORMAT parquet, COMPRESSION zstd)",
                {"path": str(source.catalog_dir / "figures.parquet"), "rows": rows},
            )
        marker.write_text(json.dumps(wanted))
    started = time.perf_counter()
    report = refresh_catalog(workspace, search_index=True, progress=True, memory_limit=memory_limit)
    if report.rebuilt:
        _say(
            f"  refresh with BM25 index over {rows:,} captions + in-line references + titles: "
            f"{time.perf_counter() - started:.0f} s"
        )
    return workspace


def measure_filters(workspace: Workspace, repeat: int) -> list[tuple[str, float, float, str]]:
    files = catalog_labels.figure_files(workspace)  # every unit's part: the same figures as the catalog
    scan = pl.scan_parquet(files)
    view = duckdb.connect()
    view.execute("CREATE VIEW figures AS SELECT * FROM read_parquet(" + repr(files) + ")")
    # label-filtered counts are section [2b] (benchmarks/catalog_labels.py): there the peer joins the same labels
    without_concept = FigureFilter(
        license_groups=("commercial",), year_from=2015, year_to=2020, min_width=512, min_height=512
    )

    def polars_count() -> int:
        query = scan.filter(
            (pl.col("license_group") == "commercial")
            & pl.col("article_year").is_between(2015, 2020)
            & (pl.col("width") >= 512)
            & (pl.col("height") >= 512)
        )
        return query.select(pl.len()).collect().item()

    def view_count() -> int:
        return view.execute(
            "SELECT count(*) FROM figures WHERE license_group = ? AND article_year BETWEEN ? AND ? "
            "AND width >= ? AND height >= ?",
            ["commercial", 2015, 2020, 512, 512],
        ).fetchone()[0]

    results = []
    with open_catalog(workspace, refresh=False) as catalog:
        sample = catalog.execute("SELECT key FROM figures USING SAMPLE 10 ROWS (reservoir, 7)").fetchall()
        keys = [key for (key,) in sample]
        columns = "key, pmcid, caption, license_group, article_year, shard, jpg_offset, jpg_size"
        for label, run in [
            ("rows by key, 10 keys (search results): workbench", lambda: len(catalog.rows_by_key(keys, columns))),
            (
                "rows by key, 10 keys: DuckDB view over Parquet",
                lambda: len(view.execute(f"SELECT {columns} FROM figures WHERE key IN ?", [keys]).fetchall()),
            ),
            (
                "rows by key, 10 keys: Polars scan",
                lambda: scan.filter(pl.col("key").is_in(keys)).select(columns.split(", ")).collect().height,
            ),
            ("count licence+year+size: workbench (DuckDB table)", lambda: catalog.count(without_concept)),
            (
                "preview 8 rows (widget grid), licence+year+size: workbench",
                lambda: len(catalog.preview(without_concept, 8)),
            ),
            ("count, no filter at all: workbench", lambda: catalog.count()),
            ("count licence+year+size: DuckDB view over Parquet", view_count),
            ("count licence+year+size: Polars scan", polars_count),
            ("group by year: workbench (DuckDB table)", lambda: len(count_by(catalog, "article_year", None, top=100))),
            ("group by year: Polars scan", lambda: scan.group_by("article_year").agg(pl.len()).collect().height),
            (
                "count, raw WHERE width*height > 4e6 AND licence: workbench",
                lambda: catalog.count(FigureFilter(where="width * height > 4e6 AND license_group = 'commercial'")),
            ),
            (
                "count, raw WHERE width*height > 4e6 AND licence: Polars scan",
                lambda: (
                    scan.filter((pl.col("width") * pl.col("height") > 4e6) & (pl.col("license_group") == "commercial"))
                    .select(pl.len())
                    .collect()
                    .item()
                ),
            ),
        ]:
            try:
                p50, p95, value = _latency(run, repeat)
            except Exception as error:  # noqa: BLE001 - one failing question must not hide the others
                _say(f"  {label:<66} failed: {str(error).splitlines()[0]}")
                continue
            results.append((label, p50, p95, str(value)))
            _say(f"  {label:<66} p50 {p50:8.1f} ms  p95 {p95:8.1f} ms  -> {value}")
    view.close()
    return results


def measure_search(workspace: Workspace, repeat: int) -> list[tuple[str, float, float, str]]:
    queries = [
        "fluorescence microscopy",
        "tumour cells",
        "kaplan meier survival",
        "cd4 lymphocytes flow cytometry",
        "axial t2 weighted mri",
    ]
    scan = pl.scan_parquet(str(workspace.catalog_dir / "figures.parquet"))

    def polars_top10(text: str) -> int:
        words = text.lower().split()
        score = sum(pl.col("caption").str.to_lowercase().str.count_matches(rf"\b{w}\b") for w in words)
        return (
            scan.select("key", score.alias("score")).filter(pl.col("score") > 0).top_k(10, by="score").collect().height
        )

    results = []
    with open_catalog(workspace, refresh=False) as catalog:
        rows = catalog.count()
        for label, run in [
            (
                f"BM25 top-10 over {rows:,} figures: workbench (text index)",
                lambda: [len(catalog.search(q, 10)) for q in queries],
            ),
            (f"term-count top-10 over {rows:,} captions: Polars scan", lambda: [polars_top10(q) for q in queries]),
        ]:
            p50, p95, value = _latency(run, max(3, repeat // 3))
            p50, p95 = p50 / len(queries), p95 / len(queries)
            results.append((label, p50, p95, str(value)))
            _say(f"  {label:<66} p50 {p50:8.1f} ms  p95 {p95:8.1f} ms  (per query)")
    return results


def build_shard_workspace(folder: Path, samples: int, mean_kb: int) -> Workspace:
    """Real shards of `samples` samples (~mean_kb KB image payloads) and their catalog, for subset throughput."""
    workspace = Workspace.at(folder / "ws")
    marker = folder / "generated.json"
    wanted = {"samples": samples, "mean_kb": mean_kb, "version": GENERATOR_VERSION}
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        refresh_catalog(workspace, search_index=False, progress=False)
        return workspace
    shutil.rmtree(folder, ignore_errors=True)
    workspace.shards.mkdir(parents=True)
    workspace.catalog_dir.mkdir(parents=True)
    rng = random.Random(1)
    rows, per_shard = [], 500
    licences = ("CC BY 4.0", "CC BY-NC 4.0", "NO-CC CODE", "CC BY 4.0", "CC0")
    for start in range(0, samples, per_shard):
        relative = f"shards/{start // per_shard:06d}.tar"
        with ShardWriter(workspace.root / relative) as writer:
            for i in range(start, min(samples, start + per_shard)):
                jpg = rng.randbytes(int(rng.uniform(0.3, 1.7) * mean_kb * 1024))
                caption = f"Figure {i}. Synthetic payload for throughput."
                key = f"PMC{3000000 + i // 4}_F{i % 4 + 1}_0"
                where = writer.add_sample(key, {"jpg": jpg, "txt": caption.encode(), "json": b'{"bench": true}'})
                licence = licences[(i // 4) % len(licences)]
                rows.append(
                    {
                        "key": key,
                        "pmcid": key.split("_")[0],
                        "figure_id": f"F{i % 4 + 1}",
                        "graphic_index": 0,
                        "graphic_count": 1,
                        "image_file_name": "x.jpg",
                        "caption": caption,
                        "caption_length": len(caption),
                        "inline_reference_count": 0,
                        "shard": relative,
                        **{f"{ext}_offset": where[ext].offset for ext in ("jpg", "txt", "json")},
                        **{f"{ext}_size": where[ext].size for ext in ("jpg", "txt", "json")},
                        "width": 800,
                        "height": 600,
                        "image_sha256": hashlib.sha256(jpg).hexdigest(),
                        "image_phash": "0" * 16,
                        "source_format": "JPEG",
                        "reencoded": False,
                        "license": licence,
                        "license_group": {
                            "CC BY 4.0": "commercial",
                            "CC0": "commercial",
                            "CC BY-NC 4.0": "noncommercial",
                        }.get(licence, "other"),
                        "article_title": "Bench",
                        "article_year": 2020,
                    }
                )
    pq.write_table(rows_to_table("figures", rows), workspace.catalog_dir / "figures.parquet")
    refresh_catalog(workspace, search_index=False, progress=False)
    marker.write_text(json.dumps(wanted))
    return workspace


def tarfile_repack(workspace: Workspace, keys: list[str], target: Path) -> int:
    """The naive peer: open every source shard with tarfile and re-add the selected members."""
    wanted = set(keys)
    written = 0
    with tarfile.open(target, "w", format=tarfile.USTAR_FORMAT) as out:
        for shard in sorted(workspace.shards.glob("*.tar")):
            with tarfile.open(shard) as source:
                for info in source:
                    if info.name.split(".", 1)[0] in wanted:
                        out.addfile(info, source.extractfile(info))
                        written += info.size
    return target.stat().st_size


def measure_subset(workspace: Workspace) -> list[tuple[str, float, str]]:
    shutil.rmtree(workspace.subsets, ignore_errors=True)
    (workspace.cache / "file_sha256.json").unlink(missing_ok=True)
    results = []
    selection = FigureFilter(license_groups=("commercial",))
    with open_catalog(workspace, refresh=False) as catalog:
        for label, name in (
            ("subset commercial, cold (hashes source shards)", "cold"),
            ("subset commercial, warm checksum cache", "warm"),
        ):
            result = materialise_subset(catalog, SubsetSpec(name, selection, shard_samples=1000), progress=False)
            results.append(
                (
                    label,
                    result.megabytes_per_second,
                    f"{result.shard_bytes / 1e6:.0f} MB, {result.samples} samples, {result.seconds:.2f} s",
                )
            )
            _say(f"  {label:<66} {result.megabytes_per_second:8.0f} MB/s  ({results[-1][2]})")
        keys = (workspace.subsets / "warm" / "keys.txt").read_text().split()
    target = workspace.tmp / "repack.tar"
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    size = tarfile_repack(workspace, keys, target)
    seconds = time.perf_counter() - started
    target.unlink()
    results.append(
        ("peer: tarfile re-pack of the same samples", size / 1e6 / seconds, f"{size / 1e6:.0f} MB, {seconds:.2f} s")
    )
    _say(f"  {results[-1][0]:<66} {results[-1][1]:8.0f} MB/s  ({results[-1][2]})")
    started = time.perf_counter()
    size = raw_copy(workspace, target)
    seconds = time.perf_counter() - started
    target.unlink()
    results.append(
        (
            "bound: raw pread+write+fsync of all shards (no tar, no hashing)",
            size / 1e6 / seconds,
            f"{size / 1e6:.0f} MB, {seconds:.2f} s",
        )
    )
    _say(f"  {results[-1][0]:<66} {results[-1][1]:8.0f} MB/s  ({results[-1][2]})")
    return results


def raw_copy(workspace: Workspace, target: Path) -> int:
    """Upper bound for copying on this machine: every shard's bytes into one file, 1 MB at a time."""
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    total = 0
    try:
        for shard in sorted(workspace.shards.glob("*.tar")):
            source = os.open(shard, os.O_RDONLY)
            try:
                offset = 0
                while chunk := os.pread(source, 1 << 20, offset):
                    os.write(fd, chunk)
                    offset += len(chunk)
                total += offset
            finally:
                os.close(source)
        os.fsync(fd)
    finally:
        os.close(fd)
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "biomedica-workbench" / "bench")
    parser.add_argument("--rows", type=int, default=24_000_000, help="figures in the big catalog")
    parser.add_argument("--slice-rows", type=int, default=1_000_000, help="figures in the BM25 slice")
    parser.add_argument("--repeat", type=int, default=21, help="timed runs per query")
    parser.add_argument("--subset-samples", type=int, default=3000, help="samples in the subset shards")
    parser.add_argument("--subset-kb", type=int, default=120, help="mean image payload, KB")
    parser.add_argument("--memory-limit", default="6GB", help="DuckDB memory cap while generating/refreshing")
    parser.add_argument("--increment", type=int, default=10_000, help="figures of the incremental refresh")
    parser.add_argument("--clusters", type=int, default=2000, help="clusters of the synthetic current clustering")
    parser.add_argument(
        "--skip", action="append", default=[], choices=("filters", "search", "text", "subset", "incremental")
    )
    parser.add_argument(
        "--verify-full", action="store_true", help="rebuild the base and compare every question's count (minutes)"
    )
    args = parser.parse_args()
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    _say(f"DuckDB {duckdb.__version__}, Polars {pl.__version__}, {os.cpu_count()} CPUs; cache {args.cache_dir}")
    summary: dict[str, list] = {}
    big_folder = args.cache_dir / f"figures-{args.rows}"
    if args.verify_full or {"filters", "search", "text"} - set(args.skip):
        _say(f"[1] catalog of {args.rows:,} figures")
        big = generate_catalog(big_folder, args.rows, args.memory_limit, args.clusters)
    if "incremental" not in args.skip and "filters" not in args.skip:
        _say(f"[1b] incremental refresh: a new extraction unit of {args.increment:,} figures, then cluster assign")
        summary["incremental"] = [add_increment(big, args.increment, args.memory_limit)]
        assign_increment(big, args.clusters, args.memory_limit)
    if "filters" not in args.skip:
        _say("[2] filter latency (the widget's live count)")
        summary["filters"] = measure_filters(big, args.repeat)
        _say("[2b] annotation labels joined at query time (benchmarks/catalog_labels.py)")
        summary["labels"] = catalog_labels.measure(big, args.repeat)
    if args.verify_full:
        _say("[1c] a full rebuild gives the same counts as the incremental cache")
        equal, full = verify_full_rebuild(big, args.memory_limit)
        _say(f"  full rebuild {full:.0f} s: counts of every question {'equal' if equal else 'DIFFER'}")
        summary["verify_full"] = [equal]
    if "search" not in args.skip:
        _say(f"[3] full-text search on a {args.slice_rows:,}-figure slice")
        piece = generate_slice(
            args.cache_dir / f"slice-{args.slice_rows}-of-{args.rows}", big, args.slice_rows, args.memory_limit
        )
        summary["search"] = measure_search(piece, args.repeat)
    if "text" not in args.skip:
        _say(f"[5] BM25 text index over {args.rows:,} figures (peers on the {args.slice_rows:,}-figure slice)")
        piece = Workspace.at(args.cache_dir / f"slice-{args.slice_rows}-of-{args.rows}" / "ws")
        if not catalog_text.ti.figures_parquet(piece).is_file():
            piece = generate_slice(piece.root.parent, big, args.slice_rows, args.memory_limit)
        summary["text"] = catalog_text.run(big, piece, args.cache_dir, args.repeat)
    if "subset" not in args.skip:
        _say(f"[4] subset materialisation ({args.subset_samples:,} samples of ~{args.subset_kb} KB)")
        shards = build_shard_workspace(
            args.cache_dir / f"shards-{args.subset_samples}-{args.subset_kb}", args.subset_samples, args.subset_kb
        )
        summary["subset"] = measure_subset(shards)
    _say("\nratios (peer time / workbench time; > 1 means the workbench is faster):")
    filters = {label: p50 for label, p50, _, _ in summary.get("filters", [])}
    pairs = [
        ("count licence+year+size", "Polars scan"),
        ("count licence+year+size", "DuckDB view over Parquet"),
        ("group by year", "Polars scan"),
        ("count, raw WHERE width*height > 4e6 AND licence", "Polars scan"),
    ]
    for question, peer in pairs:
        ours = filters.get(f"{question}: workbench (DuckDB table)") or filters.get(f"{question}: workbench")
        theirs = filters.get(f"{question}: {peer}")
        if ours and theirs:
            goal = f"goal <= 100 ms: {'met' if ours <= 100 else 'NOT met'}" if question.startswith("count lic") else ""
            _say(f"  {question:<50} vs {peer:<26} p50 {theirs / ours:6.1f}x  (workbench {ours:.1f} ms) {goal}")
    if summary.get("search"):
        (_, ours, _, _), (_, theirs, _, _) = summary["search"]
        _say(f"  {'BM25 top-10 vs Polars term-count top-10':<50} p50 {theirs / ours:6.1f}x")
    if summary.get("subset"):
        (_, cold, _), (_, warm, _), (_, peer, _), _bound = summary["subset"]
        _say(
            f"  {'subset throughput vs tarfile re-pack':<50} warm {warm / peer:6.1f}x, cold {cold / peer:6.1f}x "
            f"(goal >= 200 MB/s: {'met' if warm >= 200 else 'NOT met'} warm, {'met' if cold >= 200 else 'NOT met'}"
            f" cold)"
        )
    if summary.get("incremental"):
        (base, seconds) = summary["incremental"][0]
        full = read_json(big_folder / "full_rebuild.json", default=dict)
        _say(
            f"incremental refresh: +{args.increment} figures on {base} in {seconds:.1f} s "
            f"(full rebuild {full.get('seconds', float('nan')):.1f} s)"
        )
    if summary.get("labels"):
        _say(f"label to filter: {summary['labels']['label_to_filter_ms']:.0f} ms")
    if "filters" not in args.skip or "search" not in args.skip:
        _say(f"cache bytes / parquet bytes: {cache_bytes(big) / parquet_bytes(big):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
