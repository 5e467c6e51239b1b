"""Render the image files of a planned article (figures, table and formula images, GIF thumbnails, a PDF
placeholder) as encoded bytes. Deterministic: every graphic draws from its own seed."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw

from workbench.mirror import sources
from workbench.mirror.charts import CHART_RENDERERS, font
from workbench.mirror.plan import ArticleSpec, FigureSpec, FormulaSpec, GraphicSpec, PlanConfig, TableSpec

SAVE_OPTIONS = {
    "jpg": ("JPEG", {"quality": 88}),
    "png": ("PNG", {"compress_level": 3}),
    "tif": ("TIFF", {"compression": "tiff_lzw"}),
    "gif": ("GIF", {"optimize": False}),
}


def _rng(graphic: GraphicSpec) -> np.random.Generator:
    return np.random.default_rng(list(graphic.seed))


def _size(graphic: GraphicSpec) -> tuple[int, int]:
    if graphic.aspect >= 1:
        return graphic.long_side, max(8, round(graphic.long_side / graphic.aspect))
    return max(8, round(graphic.long_side * graphic.aspect)), graphic.long_side


def encode(image: Image.Image, image_format: str) -> bytes:
    kind, options = SAVE_OPTIONS[image_format]
    if image_format == "gif":
        image = image.quantize(128, method=Image.Quantize.FASTOCTREE) if image.mode == "RGB" else image
    buffer = io.BytesIO()
    image.save(buffer, kind, **options)
    return buffer.getvalue()


def thumbnail_gif(image: Image.Image, side: int) -> bytes:
    """A GIF about `side` px on its longer side, shrunk by an integer box average (cheap)."""
    factor = max(1, -(-max(image.size) // side))
    return encode(image.reduce(factor) if factor > 1 else image, "gif")


def figure_image(figure: FigureSpec, graphic: GraphicSpec) -> Image.Image:
    rng = _rng(graphic)
    if figure.chart is not None:
        return CHART_RENDERERS[figure.concept](figure.chart, rng, _size(graphic))
    return sources.varied(figure.source, rng, graphic.long_side)


def table_image(table: TableSpec) -> Image.Image:
    width, height = _size(table.graphic)
    image = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(image)
    cell_font = font()
    lines = [table.header, *table.rows]
    row_height = (height - 20) / (len(lines) + 1)
    col_width = (width - 20) / len(table.header)
    draw.text((10, 4), f"{table.label}. {table.title}"[: width // 6], fill=0, font=cell_font)
    column_chars = max(4, int(col_width // 6))  # the bitmap font is 6 px wide
    for r, line in enumerate(lines, start=1):
        y = 10 + r * row_height
        row_text = "".join(cell[: column_chars - 1].ljust(column_chars) for cell in line)
        draw.text((10, y), row_text, fill=0, font=cell_font)
        if r in (1, 2, len(lines)):
            draw.line([(8, y - 2), (width - 8, y - 2)], fill=0)
    return image


def formula_image(formula: FormulaSpec) -> Image.Image:
    width, height = _size(formula.graphic)
    image = Image.new("L", (width, height), 255)
    ImageDraw.Draw(image).text((6, height // 4), formula.expression, fill=0, font=font())
    return image


def placeholder_pdf(article: ArticleSpec) -> bytes:
    """A valid one-page PDF naming the article (stands in for the publisher's PDF)."""
    line = f"{article.pmcid}: sample-mirror placeholder".replace("(", "[").replace(")", "]")
    stream = f"BT /F1 12 Tf 72 720 Td ({line}) Tj ET".encode("ascii")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _with_thumbnail(graphic: GraphicSpec, image: Image.Image, config: PlanConfig) -> dict[str, bytes]:
    files = {graphic.file_name: encode(image, graphic.image_format)}
    if graphic.thumbnail:
        files[graphic.thumbnail] = thumbnail_gif(image, config.thumbnail_side)
    return files


def article_files(article: ArticleSpec, config: PlanConfig) -> dict[str, bytes]:
    """Every non-XML file of the package, by file name (without the `PMC…/` folder)."""
    files: dict[str, bytes] = {f"{article.stem}.pdf": placeholder_pdf(article)}
    for figure in article.figures:
        for graphic in figure.graphics:
            files.update(_with_thumbnail(graphic, figure_image(figure, graphic), config))
    for table in article.tables:
        files.update(_with_thumbnail(table.graphic, table_image(table), config))
    for formula in article.formulas:
        files.update(_with_thumbnail(formula.graphic, formula_image(formula), config))
    return files
