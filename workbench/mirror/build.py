"""Build an offline sample mirror laid out like PMC's FTP tree:

    OUT/oa_file_list.csv                      PMC's header and value formats
    OUT/oa_package/xx/yy/PMCnnnnnnn.tar.gz    current layout, members `PMCnnnnnnn/...`
    OUT/ground_truth.jsonl                    one row per figure graphic: the concept it shows
    OUT/sample_mirror.json                    how it was built (seed, settings) and its summary

Article i depends only on (seed, i, settings), so a build is resumable and idempotent: packages already present
are kept (they were written atomically by a build with the same fingerprint, checked via sample_mirror.json),
missing ones are generated, and the file list and ground truth are rewritten. A folder built with other settings
is refused rather than mixed.
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC
from functools import partial
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from workbench.errors import UserError
from workbench.licenses import license_group
from workbench.mirror.images import article_files
from workbench.mirror.jats import article_xml
from workbench.mirror.package import tar_gz, write_atomic
from workbench.mirror.plan import ArticleSpec, PlanConfig, plan_article

GENERATOR_VERSION = 1  # bump when the same seed would produce different bytes
FILE_LIST = "oa_file_list.csv"
GROUND_TRUTH = "ground_truth.jsonl"
MANIFEST = "sample_mirror.json"
FILE_LIST_HEADER = ("File", "Article Citation", "Accession ID", "Last Updated (YYYY-MM-DD HH:MM:SS)", "PMID", "License")


@dataclass(frozen=True)
class MirrorConfig:
    """How a sample mirror is generated. `plan` and `gzip_level` change the bytes; `workers` does not."""

    plan: PlanConfig = PlanConfig()
    gzip_level: int = 1  # JPEG payloads barely compress: level 6 saves 1% of bytes for 15% more time
    workers: int = 1  # processes generating packages; 1 = in this process


@dataclass(frozen=True)
class MirrorSummary:
    """What a build left in OUT. `bytes` counts the packages; `written`/`skipped` say how many were generated now."""

    out: Path
    seed: int
    articles: int
    figures: int
    graphics: int
    tables: int
    bytes: int
    license_counts: dict[str, int] = field(default_factory=dict)
    license_group_counts: dict[str, int] = field(default_factory=dict)
    concept_counts: dict[str, int] = field(default_factory=dict)
    written: int = 0
    skipped: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "out": str(self.out)}


def package_bytes(article: ArticleSpec, config: MirrorConfig = MirrorConfig()) -> bytes:
    """The `.tar.gz` of one planned article."""
    files = article_files(article, config.plan)
    files[f"{article.stem}.nxml"] = article_xml(article)
    mtime = int(article.last_updated.replace(tzinfo=UTC).timestamp())
    return tar_gz(article.pmcid, files, mtime, level=config.gzip_level)


def ensure_package(out: Path, seed: int, config: MirrorConfig, index: int) -> tuple[ArticleSpec, bool, int]:
    """Generate article `index`'s package unless it is already there; (its plan, written now?, size in bytes)."""
    article = plan_article(seed, index, config.plan)
    path = out / article.package_file
    if path.is_file():
        return article, False, path.stat().st_size
    data = package_bytes(article, config)
    write_atomic(path, data)
    return article, True, len(data)


def _fingerprint(seed: int, config: MirrorConfig) -> dict[str, Any]:
    return {"generator": GENERATOR_VERSION, "seed": seed, "plan": asdict(config.plan), "gzip_level": config.gzip_level}


def _previous_articles(out: Path, fingerprint: dict[str, Any]) -> int:
    """How many articles an earlier build with the same fingerprint made in OUT; refuse anything else."""
    if not out.exists():
        return 0
    if not out.is_dir():
        raise UserError(f"sample mirror folder {out} is a file")
    manifest_path = out / MANIFEST
    if not manifest_path.is_file():
        if any(out.iterdir()):
            raise UserError(f"{out} is not empty and holds no {MANIFEST}; choose a new folder for the sample mirror")
        return 0
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("fingerprint") != json.loads(json.dumps(fingerprint)):
        built = manifest.get("fingerprint", {})
        raise UserError(
            f"{out} holds a sample mirror built with seed={built.get('seed')} and other settings "
            f"({built}); use another folder, or delete this one to rebuild"
        )
    return int(manifest.get("articles", 0))


def _write_manifest(out: Path, fingerprint: dict[str, Any], articles: int, summary: MirrorSummary | None) -> None:
    manifest = {"fingerprint": fingerprint, "articles": articles, "complete": summary is not None}
    if summary is not None:
        manifest["summary"] = {
            k: v for k, v in summary.as_dict().items() if k not in ("out", "written", "skipped", "seconds")
        }
    write_atomic(out / MANIFEST, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())


def file_list_row(article: ArticleSpec) -> tuple[str, ...]:
    return (
        article.package_file,
        article.citation,
        article.pmcid,
        article.last_updated.strftime("%Y-%m-%d %H:%M:%S"),
        article.pmid or "",
        article.license,
    )


def ground_truth_rows(article: ArticleSpec) -> list[dict[str, Any]]:
    """One row per graphic of each figure (tables and formulas are not figures and are left out)."""
    rows = []
    for figure in article.figures:
        caption = " ".join(part for part in (figure.caption_title, figure.caption_text) if part)
        for graphic_index, graphic in enumerate(figure.graphics):
            rows.append(
                {
                    "pmcid": article.pmcid,
                    "package": article.package_file,
                    "figure_id": figure.fig_id,
                    "graphic_index": graphic_index,
                    "graphic_href": graphic.href,
                    "file_name": graphic.file_name,
                    "concept": figure.concept,
                    "concept_group": figure.concept_group,
                    "source": figure.source,
                    "caption": caption,
                    "license": article.license,
                }
            )
    return rows


def _remove_surplus(out: Path, seed: int, config: MirrorConfig, start: int, stop: int) -> None:
    """Delete packages of articles [start, stop) left by an earlier, larger build."""
    for index in range(start, stop):
        (out / plan_article(seed, index, config.plan).package_file).unlink(missing_ok=True)


class _Listings:
    """Streams the file list and the ground truth to temporary files (memory stays flat at 100,000 articles);
    `commit` renames both into place, `discard` removes them."""

    def __init__(self, out: Path) -> None:
        self.targets = (out / FILE_LIST, out / GROUND_TRUTH)
        self.temporary = tuple(path.with_name(f".{path.name}.{os.getpid()}.part") for path in self.targets)
        self.file_list = self.temporary[0].open("w", newline="", encoding="utf-8")
        self.truth = self.temporary[1].open("w", encoding="utf-8")
        self.csv = csv.writer(self.file_list, lineterminator="\n")
        self.csv.writerow(FILE_LIST_HEADER)

    def add(self, article: ArticleSpec) -> None:
        self.csv.writerow(file_list_row(article))
        self.truth.writelines(json.dumps(row, sort_keys=True) + "\n" for row in ground_truth_rows(article))

    def commit(self) -> None:
        self.file_list.close()
        self.truth.close()
        for temporary, target in zip(self.temporary, self.targets, strict=True):
            os.replace(temporary, target)

    def discard(self) -> None:
        self.file_list.close()
        self.truth.close()
        for temporary in self.temporary:
            temporary.unlink(missing_ok=True)


def _packages(
    out: Path, seed: int, articles: int, config: MirrorConfig, progress: bool
) -> Iterator[tuple[ArticleSpec, bool, int]]:
    """(plan, written now?, size) for articles 0..articles-1, in order, generated here or in worker processes."""
    ensure = partial(ensure_package, out, seed, config)
    executor = ProcessPoolExecutor(config.workers) if config.workers > 1 else None
    results = executor.map(ensure, range(articles), chunksize=8) if executor else map(ensure, range(articles))
    try:
        yield from tqdm(results, total=articles, desc="sample mirror", unit="article", disable=not progress)
    finally:
        if executor:
            executor.shutdown(cancel_futures=True)


def build_sample_mirror(
    out: Path, articles: int, seed: int, progress: bool = True, *, config: MirrorConfig = MirrorConfig()
) -> MirrorSummary:
    """Write (or complete) a PMC-like mirror of `articles` generated articles into `out`; see the module doc."""
    if articles < 1:
        raise UserError(f"--articles must be at least 1, got {articles}")
    if config.workers < 1:
        raise UserError(f"workers must be at least 1, got {config.workers}")
    started = time.perf_counter()
    out = Path(out)
    fingerprint = _fingerprint(seed, config)
    previous = _previous_articles(out, fingerprint)
    out.mkdir(parents=True, exist_ok=True)
    for leftover in out.glob(".*.part"):  # listings of a run that was killed before it could clean up
        leftover.unlink()
    _write_manifest(out, fingerprint, max(previous, articles), None)

    licenses: Counter[str] = Counter()
    concepts: Counter[str] = Counter()
    figures = graphics = tables = total_bytes = written = 0
    listings = _Listings(out)
    try:
        for article, was_written, size in _packages(out, seed, articles, config, progress):
            listings.add(article)
            licenses[article.license] += 1
            concepts.update(figure.concept for figure in article.figures)
            figures += len(article.figures)
            graphics += article.graphic_count
            tables += len(article.tables)
            total_bytes += size
            written += was_written
    except BaseException:
        listings.discard()
        raise
    _remove_surplus(out, seed, config, articles, previous)
    listings.commit()
    groups = Counter(license_group(name) for name in licenses.elements())
    summary = MirrorSummary(
        out=out,
        seed=seed,
        articles=articles,
        figures=figures,
        graphics=graphics,
        tables=tables,
        bytes=total_bytes,
        license_counts=dict(sorted(licenses.items())),
        license_group_counts=dict(sorted(groups.items())),
        concept_counts=dict(sorted(concepts.items())),
        written=written,
        skipped=articles - written,
        seconds=round(time.perf_counter() - started, 3),
    )
    _write_manifest(out, fingerprint, articles, summary)
    return summary
