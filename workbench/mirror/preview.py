"""Look at a built sample mirror from a notebook: counts as small tables, a contact sheet of figures."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import polars as pl
from PIL import Image, ImageDraw

from workbench.licenses import license_group
from workbench.mirror.build import FILE_LIST, GROUND_TRUTH, MirrorSummary
from workbench.mirror.charts import font
from workbench.mirror.concepts import concept_group


def describe(summary: MirrorSummary) -> str:
    rate = summary.written / summary.seconds if summary.seconds and summary.written else 0.0
    return (
        f"{summary.articles} articles ({summary.written} generated now, {summary.skipped} already there), "
        f"{summary.figures} figures with {summary.graphics} graphics, {summary.tables} tables, "
        f"{summary.bytes / 1e6:.1f} MB in {summary.seconds:.1f} s ({rate:.0f} articles/s) -> {summary.out}"
    )


def license_counts(summary: MirrorSummary) -> pl.DataFrame:
    rows = [{"license": k, "group": license_group(k), "articles": v} for k, v in summary.license_counts.items()]
    return pl.DataFrame(rows).sort(["group", "articles"], descending=[False, True])


def concept_counts(summary: MirrorSummary) -> pl.DataFrame:
    rows = [{"concept": k, "group": concept_group(k), "figures": v} for k, v in summary.concept_counts.items()]
    return pl.DataFrame(rows).sort(["group", "figures"], descending=[False, True])


def file_list_head(out: Path, rows: int = 5) -> pl.DataFrame:
    return pl.read_csv(Path(out) / FILE_LIST, n_rows=rows, infer_schema=False)


def ground_truth(out: Path) -> pl.DataFrame:
    return pl.read_ndjson(Path(out) / GROUND_TRUTH)


def figure_gallery(out: Path, count: int = 12, columns: int = 4, tile: int = 200) -> Image.Image:
    """A contact sheet of up to `count` figure graphics, one concept each where possible, labelled by concept."""
    out = Path(out)
    rows = [json.loads(line) for line in (out / GROUND_TRUTH).read_text().splitlines()]
    first_of_concept: dict[str, dict] = {}
    for row in rows:
        first_of_concept.setdefault(row["concept"], row)
    chosen = list(first_of_concept.values())[:count]
    chosen += [row for row in rows if row not in chosen][: count - len(chosen)] if len(chosen) < count else []
    sheet = Image.new("RGB", (columns * tile, -(-len(chosen) // columns) * (tile + 14)), "white")
    draw = ImageDraw.Draw(sheet)
    for position, row in enumerate(chosen):
        with tarfile.open(out / row["package"]) as tar:
            data = tar.extractfile(f"{row['pmcid']}/{row['file_name']}").read()
        image = Image.open(io.BytesIO(data)).convert("RGB")
        image.thumbnail((tile - 4, tile - 4))
        x, y = (position % columns) * tile, (position // columns) * (tile + 14)
        sheet.paste(image, (x + 2, y + 2))
        draw.text((x + 2, y + tile), row["concept"], fill="black", font=font())
    return sheet
