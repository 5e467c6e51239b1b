"""What extraction produced, for notebooks: counts, drops by reason, a grid of pairs with thumbnails."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import polars as pl
from PIL import Image

from workbench.extract.finish import SIZES_FILE
from workbench.ustar import MemberLocation, read_member
from workbench.workspace import Workspace


def _workspace(workspace: str | Path | Workspace) -> Workspace:
    return workspace if isinstance(workspace, Workspace) else Workspace.at(workspace)


def _table_path_exists(ws: Workspace, path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; run `workbench extract --workspace {ws.root}` first")


def _table(ws: Workspace, name: str, columns: list[str]) -> pl.DataFrame:
    path = ws.catalog_dir / f"{name}.parquet"
    _table_path_exists(ws, path)
    return pl.read_parquet(path, columns=columns)


def extraction_summary(workspace: str | Path | Workspace) -> dict[str, Any]:
    """Headline numbers: shards, pairs, articles, errors, exact duplicates, pairs per licence group."""
    ws = _workspace(workspace)
    figures = _table(ws, "figures", ["key", "duplicate_of", "license_group"])
    articles = _table(ws, "articles", ["pmcid", "pair_count"])
    errors = _table(ws, "errors", ["reason"])
    sizes_path = ws.shards / SIZES_FILE
    sizes = json.loads(sizes_path.read_text()) if sizes_path.exists() else {}
    groups = figures.group_by("license_group").len().sort("license_group")
    return {
        "shards": len(sizes),
        "samples_in_shards": sum(sizes.values()),
        "pairs": figures.height,
        "unique_pairs": figures.filter(pl.col("duplicate_of").is_null()).height,
        "exact_duplicates": figures.filter(pl.col("duplicate_of").is_not_null()).height,
        "articles": articles.height,
        "articles_with_pairs": articles.filter(pl.col("pair_count") > 0).height,
        "errors": errors.height,
        "pairs_by_license_group": dict(zip(groups["license_group"], groups["len"], strict=True)),
    }


def drops_by_reason(workspace: str | Path | Workspace) -> pl.DataFrame:
    """Error records counted by stage and reason, most frequent first, with one example detail."""
    errors = _table(_workspace(workspace), "errors", ["stage", "reason", "detail"])
    return (
        errors.group_by("stage", "reason")
        .agg(pl.len().alias("count"), pl.col("detail").first().alias("example"))
        .sort(["count", "stage", "reason"], descending=[True, False, False])
    )


def sample_pairs(workspace: str | Path | Workspace, n: int = 12, seed: int = 0) -> pl.DataFrame:
    """`n` original (non-duplicate) pairs spread over the catalog, chosen by a seeded hash of the key."""
    ws = _workspace(workspace)
    path = ws.catalog_dir / "figures.parquet"
    _table_path_exists(ws, path)
    originals = pl.scan_parquet(path).filter(pl.col("duplicate_of").is_null())
    chosen = originals.select("key").with_columns(pl.col("key").hash(seed).alias("_rank")).sort("_rank").head(n)
    keys = chosen.collect()["key"].to_list()
    rows = originals.filter(pl.col("key").is_in(keys)).collect()
    return rows.sort(pl.col("key").replace_strict(keys, list(range(len(keys))), return_dtype=pl.Int64))


def thumbnail_data_uri(workspace: str | Path | Workspace, row: dict[str, Any], size: int = 192) -> str:
    """The pair's stored JPEG, read from its shard by offset, as a small inline `data:` URI."""
    ws = _workspace(workspace)
    data = read_member(ws.root / row["shard"], MemberLocation(row["jpg_offset"], row["jpg_size"]))
    with Image.open(io.BytesIO(data)) as image:
        image.thumbnail((size, size))
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, "JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def pairs_grid_html(workspace: str | Path | Workspace, n: int = 12, caption_chars: int = 300) -> str:
    """HTML grid of `n` pairs: thumbnail, key, caption and in-line references (escaped, truncated)."""
    ws = _workspace(workspace)
    cells = []
    for row in sample_pairs(ws, n).iter_rows(named=True):
        caption = row["caption"] if len(row["caption"]) <= caption_chars else row["caption"][:caption_chars] + " …"
        references = "".join(
            f"<li>{html.escape(text[:caption_chars])}</li>" for text in (row["inline_references"] or [])[:3]
        )
        cells.append(
            '<div style="border:1px solid #ddd;padding:6px;font-size:12px;overflow:hidden">'
            f'<img src="{thumbnail_data_uri(ws, row)}" style="max-width:100%;max-height:192px"/>'
            f"<div><b>{html.escape(row['key'])}</b> · {html.escape(row['license_group'])} · "
            f"{row['width']}×{row['height']}</div>"
            f"<div>{html.escape(caption)}</div>"
            + (f'<div style="color:#555">In-line references:<ul>{references}</ul></div>' if references else "")
            + "</div>"
        )
    return (
        '<div style="display:grid;grid-template-columns:repeat(auto-fill,minmax(240px,1fr));gap:8px">'
        + "".join(cells)
        + "</div>"
    )


def pairs_grid(workspace: str | Path | Workspace, n: int = 12) -> Any:
    """`pairs_grid_html` wrapped for Jupyter display."""
    from IPython.display import HTML

    return HTML(pairs_grid_html(workspace, n))
