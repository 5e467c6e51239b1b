"""A small synthetic extracted workspace: real JPEGs in real WebDataset shards, a Parquet catalog per schema.

Built with the extraction's own shard writer and catalog schema (`workbench.extract`), so offsets, headers
and columns follow the same contract as `workbench extract`. Deterministic for a given seed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import random
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
from PIL import Image

from workbench.extract.catalog import rows_to_table
from workbench.licenses import license_group
from workbench.ustar import ShardWriter
from workbench.workspace import Workspace

LICENSES = ("CC BY 4.0", "CC BY 4.0", "CC0", "CC BY-NC 4.0", "CC BY-NC-ND 4.0", "NO-CC CODE", None)
JOURNALS = ("PLoS ONE", "BMC Cancer", "Sensors (Basel)", "Radiology Case Reports", "eLife")
ARTICLE_TYPES = ("research-article", "research-article", "review-article", "case-report")
MESH = ("Humans", "Mice", "Neoplasms", "Tomography, X-Ray Computed", "Brain", "Microscopy, Fluorescence")
KEYWORDS = ("MRI", "histology", "CD4", "deep learning", "zebrafish", "Western blot")
WORDS = (
    "cells",
    "tumour",
    "mice",
    "staining",
    "scale",
    "bar",
    "brain",
    "section",
    "expression",
    "panel",
    "control",
    "treated",
    "fluorescence",
    "microscopy",
    "CT",
    "scan",
    "patient",
    "lesion",
    "graph",
    "mean",
)


@dataclass(frozen=True)
class FixtureWorkspace:
    workspace: Workspace
    figures: int
    articles: int
    shards: int


def _jpeg(rng: random.Random, width: int, height: int) -> bytes:
    colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
    image = Image.new("RGB", (width, height), colour)
    for _ in range(3):  # a few blocks, so images differ and thumbnails show something
        x, y = rng.randrange(width), rng.randrange(height)
        image.paste((rng.randrange(256), 0, rng.randrange(256)), (x, y, min(width, x + 9), min(height, y + 9)))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=70)
    return buffer.getvalue()


def _caption(rng: random.Random, article: int, figure: int) -> str:
    words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 18)))
    return f"Figure {figure + 1}. {words.capitalize()} (article {article})."


def build_workspace(
    root: str | Path, *, articles: int = 60, seed: int = 0, pairs_per_shard: int = 80, duplicate_every: int = 17
) -> FixtureWorkspace:
    """Write WS/shards/*.tar and WS/catalog/{figures,articles,errors}.parquet under `root`."""
    rng = random.Random(seed)
    workspace = Workspace.at(root).ensure()
    workspace.shards.mkdir(parents=True, exist_ok=True)
    workspace.catalog_dir.mkdir(parents=True, exist_ok=True)
    figure_rows, article_rows, pending = [], [], []
    first_image: bytes | None = None
    for index in range(articles):
        pmcid = f"PMC{100000 + index * 7}"
        licence = LICENSES[index % len(LICENSES)]
        year = 2005 + (index * 3) % 20
        date = dt.date(year, 1 + index % 12, 1 + index % 28)
        journal = JOURNALS[index % len(JOURNALS)]
        article_type = ARTICLE_TYPES[index % len(ARTICLE_TYPES)]
        mesh = sorted(rng.sample(MESH, rng.randint(0, 3)))
        keywords = sorted(rng.sample(KEYWORDS, rng.randint(0, 2)))
        title = f"Study {index} of {rng.choice(WORDS)} {rng.choice(WORDS)}"
        count = rng.randint(0, 6)
        article_rows.append(
            {
                "pmcid": pmcid,
                "pmid": str(2000000 + index),
                "doi": f"10.1234/fixture.{index}",
                "title": title,
                "journal": journal,
                "date": date,
                "year": year,
                "article_type": article_type,
                "subjects": ["Biology"],
                "keywords": keywords,
                "license": licence,
                "license_group": license_group(licence),
                "abstract": f"Abstract of study {index}.",
                "text": f"Body of study {index}.",
                "reference_count": 3,
                "reference_pmids": [],
                "figure_count": count,
                "pair_count": count,
                "package": f"mirror/{pmcid}.tar.gz",
            }
        )
        for figure in range(count):
            width, height = rng.randint(24, 160), rng.randint(24, 160)
            jpg = _jpeg(rng, width, height)
            if first_image is None:
                first_image = jpg
            elif len(pending) % duplicate_every == duplicate_every - 1:
                jpg, (width, height) = first_image, Image.open(io.BytesIO(first_image)).size
            caption = _caption(rng, index, figure)
            inline = [f"As shown in Figure {figure + 1}, the {rng.choice(WORDS)} changed."] if figure % 2 else []
            key = f"{pmcid}_F{figure + 1}_0"
            row = {
                "key": key,
                "pmcid": pmcid,
                "pmid": str(2000000 + index),
                "doi": f"10.1234/fixture.{index}",
                "figure_id": f"F{figure + 1}",
                "figure_label": f"Figure {figure + 1}",
                "graphic_index": 0,
                "graphic_count": 1,
                "image_file_name": f"{pmcid}_f{figure + 1}.jpg",
                "caption": caption,
                "caption_length": len(caption),
                "inline_references": inline,
                "inline_reference_count": len(inline),
                "width": width,
                "height": height,
                "image_phash": f"{rng.getrandbits(64):016x}",
                "source_format": "JPEG",
                "reencoded": False,
                "license": licence,
                "license_group": license_group(licence),
                "article_title": title,
                "article_journal": journal,
                "article_date": date,
                "article_year": year,
                "article_type": article_type,
                "article_subjects": ["Biology"],
                "article_keywords": keywords,
                "article_mesh_terms": mesh,
            }
            sample_json = {"key": key, "pmcid": pmcid, "caption": caption, "license": licence}
            pending.append((row, jpg, caption.encode("utf-8"), json.dumps(sample_json, sort_keys=True).encode()))
    shards = 0
    for start in range(0, len(pending), pairs_per_shard):
        relative = f"shards/{shards:06d}.tar"
        with ShardWriter(workspace.root / relative) as writer:
            for row, jpg, txt, js in pending[start : start + pairs_per_shard]:
                where = writer.add_sample(row["key"], {"jpg": jpg, "txt": txt, "json": js})
                row.update(shard=relative, image_sha256=_sha256(jpg))
                for ext in ("jpg", "txt", "json"):
                    row[f"{ext}_offset"], row[f"{ext}_size"] = where[ext].offset, where[ext].size
                figure_rows.append(row)
        shards += 1
    figure_rows.sort(key=lambda r: r["key"])
    first_by_hash: dict[str, str] = {}
    for row in figure_rows:
        row["duplicate_of"] = first_by_hash.setdefault(row["image_sha256"], row["key"])
        if row["duplicate_of"] == row["key"]:
            row["duplicate_of"] = None
    errors = [
        {
            "pmcid": "PMC999",
            "package": "mirror/PMC999.tar.gz",
            "stage": "image",
            "reason": "too_small",
            "detail": "f1.jpg",
        }
    ]
    pq.write_table(rows_to_table("figures", figure_rows), workspace.catalog_dir / "figures.parquet")
    pq.write_table(rows_to_table("articles", article_rows), workspace.catalog_dir / "articles.parquet")
    pq.write_table(rows_to_table("errors", errors), workspace.catalog_dir / "errors.parquet")
    return FixtureWorkspace(workspace, len(figure_rows), len(article_rows), shards)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
