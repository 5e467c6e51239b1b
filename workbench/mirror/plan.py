"""What one sample-mirror article contains, decided cheaply and deterministically from (seed, index) alone:
ids, journal, dates, licence, citation, figures (concept, caption, file names) and tables. Rendering images and
writing XML happen later, from this plan, so an already-built package can be skipped without drawing anything."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from workbench.mirror import text
from workbench.mirror.charts import ChartLabels
from workbench.mirror.concepts import CHART_CONCEPTS, CONCEPTS, concept_group
from workbench.mirror.sources import sources_for

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
FIGURE_COUNT_WEIGHTS = (5, 12, 18, 20, 17, 12, 8, 5, 3)  # articles with 0, 1, ... 8 figures
FORMAT_WEIGHTS = {  # by concept group: charts are often PNG/GIF in PMC, photographs and scans mostly JPEG
    "chart": {"jpg": 70, "png": 15, "tif": 6, "gif": 9},
    "image": {"jpg": 88, "png": 3, "tif": 5, "gif": 4},
}
LICENSE_WEIGHTS = {
    "CC BY": 42,
    "CC0": 4,
    "CC BY-SA": 2,
    "CC BY-ND": 2,
    "CC BY-NC": 12,
    "CC BY-NC-SA": 5,
    "CC BY-NC-ND": 10,
    "NO-CC CODE": 23,
}
CHART_ASPECTS = (4 / 3, 1.0, 3 / 2, 16 / 10)


@dataclass(frozen=True)
class JournalStyle:
    """How a publisher names things inside its packages (format fields: code, n, vol, year, issue, stem, k)."""

    stem: str
    doi: str
    fig_id: str
    href: str
    table_id: str
    table_href: str
    formula_href: str
    href_has_extension: bool
    elocation: str | None  # citation uses this instead of a page range


STYLES: dict[str, JournalStyle] = {
    "plos": JournalStyle(
        "{code}.{n:07d}", "10.1371/journal.{stem}", "{code}-{n:07d}-g{k:03d}", "{stem}.g{k:03d}",
        "{code}-{n:07d}-t{k:03d}", "{stem}.t{k:03d}", "{stem}.e{k:03d}", False, "e{n}",
    ),
    "bmc": JournalStyle(
        "{code}-{vol}-{n}", "10.1186/{stem}", "F{k}", "{stem}-{k}", "T{k}", "{stem}-T{k}", "{stem}-i{k}", False, "{n}"
    ),
    "frontiers": JournalStyle(
        "{code}-{vol:02d}-{n:07d}", "10.3389/{code}.{year}.{n:07d}", "F{k}", "{stem}-g{k:03d}", "T{k}",
        "{stem}-t{k:03d}", "{stem}-e{k:03d}", True, "{n}",
    ),
    "mdpi": JournalStyle(
        "{code}-{vol:02d}-{n:05d}", "10.3390/{code}{vol}{issue:02d}{n:04d}", "{stem}-f{k:03d}", "{stem}-g{k:03d}",
        "{stem}-t{k:03d}", "{stem}-t{k:03d}", "{stem}-i{k:03d}", True, "{n}",
    ),
    "nature": JournalStyle(
        "{code}_{year}_Article_{n}", "10.1038/s{code}-0{yy}-{n:05d}-x", "Fig{k}", "{code}_{year}_{n}_Fig{k}_HTML",
        "Tab{k}", "{code}_{year}_{n}_Tab{k}_HTML", "{code}_{year}_{n}_Equ{k}_HTML", False, "{n}",
    ),
    "elsevier": JournalStyle(
        "main", "10.1016/j.{code}.{year}.{n:06d}", "fig{k}", "gr{k}", "tbl{k}", "tb{k}", "si{k}", False, None
    ),
    "oup": JournalStyle(
        "{code}{n:03d}", "10.1093/{code}/{stem}", "{stem}-F{k}", "{stem}f{k}", "{stem}-T{k}", "{stem}t{k}",
        "{stem}e{k}", False, "{stem}",
    ),
}  # fmt: skip


@dataclass(frozen=True)
class Journal:
    iso_abbrev: str
    title: str
    publisher: str
    issn: str
    style: str
    code: str
    first_year: int
    subject: str


JOURNALS: tuple[Journal, ...] = (
    Journal("PLoS One", "PLoS ONE", "Public Library of Science", "1932-6203",
            "plos", "pone", 2006, "Research Article"),
    Journal("PLoS Med", "PLoS Medicine", "Public Library of Science", "1549-1676",
            "plos", "pmed", 2004, "Research Article"),
    Journal("BMC Cancer", "BMC Cancer", "BioMed Central", "1471-2407",
            "bmc", "1471-2407", 2001, "Research Article"),
    Journal("BMC Med Imaging", "BMC Medical Imaging", "BioMed Central", "1471-2342",
            "bmc", "1471-2342", 2001, "Research"),
    Journal("Breast Cancer Res", "Breast Cancer Research", "BioMed Central", "1465-5411",
            "bmc", "bcr", 1999, "Research"),
    Journal("Front Oncol", "Frontiers in Oncology", "Frontiers Media S.A.", "2234-943X",
            "frontiers", "fonc", 2011, "Oncology"),
    Journal("Front Med (Lausanne)", "Frontiers in Medicine", "Frontiers Media S.A.", "2296-858X",
            "frontiers", "fmed", 2014, "Medicine"),
    Journal("Cancers (Basel)", "Cancers", "MDPI", "2072-6694",
            "mdpi", "cancers", 2009, "Article"),
    Journal("Diagnostics (Basel)", "Diagnostics", "MDPI", "2075-4418",
            "mdpi", "diagnostics", 2011, "Article"),
    Journal("Sci Rep", "Scientific Reports", "Nature Publishing Group UK", "2045-2322",
            "nature", "41598", 2011, "Article"),
    Journal("Insights Imaging", "Insights into Imaging", "Springer Vienna", "1869-4101",
            "nature", "13244", 2010, "Original Article"),
    Journal("Radiol Case Rep", "Radiology Case Reports", "Elsevier", "1930-0433",
            "elsevier", "radcr", 2006, "Case Report"),
    Journal("EBioMedicine", "EBioMedicine", "Elsevier", "2352-3964",
            "elsevier", "ebiom", 2014, "Research paper"),
    Journal("Brain Commun", "Brain Communications", "Oxford University Press", "2632-1297",
            "oup", "fcab", 2019, "Original Article"),
    Journal("Eur Heart J Case Rep", "European Heart Journal: Case Reports", "Oxford University Press", "2514-2119",
            "oup", "ytab", 2017, "Case Report"),
)  # fmt: skip


@dataclass(frozen=True)
class GraphicSpec:
    """One image file: the `xlink:href` as written in the XML, the member file it resolves to, an optional GIF
    thumbnail beside it, the size to render and its own random seed."""

    href: str
    file_name: str
    image_format: str  # jpg, png, tif, gif
    thumbnail: str | None
    long_side: int
    aspect: float  # width / height; 0 means "keep the source's"
    seed: tuple[int, ...]


@dataclass(frozen=True)
class FigureSpec:
    fig_id: str
    label: str
    concept: str
    concept_group: str
    source: str  # "chart:<kind>" or the real image's name, e.g. "pydicom:693_UNCR.dcm"
    caption_title: str | None
    caption_text: str
    chart: ChartLabels | None
    graphics: tuple[GraphicSpec, ...]


@dataclass(frozen=True)
class TableSpec:
    table_id: str
    label: str
    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    graphic: GraphicSpec


@dataclass(frozen=True)
class FormulaSpec:
    formula_id: str
    expression: str
    graphic: GraphicSpec


@dataclass(frozen=True)
class ArticleSpec:
    index: int
    pmcid: str
    pmid: str | None
    doi: str
    journal: Journal
    stem: str
    title: str
    disease: str
    license: str
    pub_date: date
    volume: int
    issue: int
    pages: str  # "55-60" or an elocation id
    last_updated: datetime
    keywords: tuple[str, ...]
    authors: tuple[tuple[str, str], ...]
    figures: tuple[FigureSpec, ...]
    tables: tuple[TableSpec, ...]
    formulas: tuple[FormulaSpec, ...]
    text_seed: str

    @property
    def package_file(self) -> str:
        """Path relative to the mirror root, as in the file list's `File` column."""
        digest = hashlib.md5(self.pmcid.encode(), usedforsecurity=False).hexdigest()
        return f"oa_package/{digest[:2]}/{digest[2:4]}/{self.pmcid}.tar.gz"

    @property
    def citation(self) -> str:
        """As PMC's file list writes it: `Breast Cancer Res. 2001 Nov 2; 3(1):55-60`, `BMC Cancer. 2005 Jan 19; 5:8`
        (BioMed Central: no issue), `Radiol Case Rep. 2004 Sep; 1(2):167-174` (print journals: no day)."""
        when = f"{self.pub_date.year} {MONTHS[self.pub_date.month - 1]}"
        if self.journal.style != "elsevier":
            when += f" {self.pub_date.day}"
        issue = "" if self.journal.style == "bmc" else f"({self.issue})"
        return f"{self.journal.iso_abbrev}. {when}; {self.volume}{issue}:{self.pages}"

    @property
    def graphic_count(self) -> int:
        return sum(len(figure.graphics) for figure in self.figures)


@dataclass(frozen=True)
class PlanConfig:
    """Knobs that change what is generated (part of a mirror's fingerprint)."""

    image_sizes: tuple[int, int] = (256, 512)  # min and max long side of figure images, px
    thumbnail_side: int = 120


def id_bases(seed: int) -> tuple[int, int]:
    """First PMCID and PMID numbers for a seed (different seeds give different, realistic-looking ids)."""
    rng = random.Random(f"sample-mirror/{seed}")
    return rng.randrange(1_000_000, 8_000_000), rng.randrange(10_000_000, 38_000_000)


def _weighted(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(tuple(weights), weights=tuple(weights.values()))[0]


def _graphic(
    rng: random.Random,
    style: JournalStyle,
    href_base: str,
    config: PlanConfig,
    seed: tuple[int, ...],
    *,
    image_format: str,
    thumbnails: bool,
    aspect: float,
) -> GraphicSpec:
    href = f"{href_base}.{image_format}" if style.href_has_extension else href_base
    file_name = f"{href_base}.{image_format}"
    thumbnail = f"{href_base}.gif" if thumbnails and image_format == "jpg" else None
    long_side = rng.randint(*config.image_sizes)
    return GraphicSpec(href, file_name, image_format, thumbnail, long_side, aspect, seed)


def _figure(
    rng: random.Random, names: dict, style: JournalStyle, k: int, config: PlanConfig, seed: tuple, thumbs: bool
) -> FigureSpec:
    concept = rng.choice(CONCEPTS)
    panels = 2 if rng.random() < 0.1 else 1
    fig_id = style.fig_id.format(k=k, **names)
    label = rng.choice(("Figure {k}", "Fig. {k}", "Fig {k}")).format(k=k)
    if concept in CHART_CONCEPTS:
        chart = text.chart_labels(rng, concept)
        source = f"chart:{concept}"
        title, body = text.chart_caption(rng, concept, chart, panels)
        aspect = rng.choice(CHART_ASPECTS)
    else:
        chart = None
        image_source = rng.choice(sources_for(concept))
        source = image_source.name
        title, body = text.image_caption(rng, rng.choice(image_source.descriptions), image_source.findings, panels)
        aspect = 0.0
    image_format = _weighted(rng, FORMAT_WEIGHTS["chart" if chart else "image"])
    graphics = []
    for panel in range(panels):
        href_base = style.href.format(k=k, **names) + ("" if panels == 1 else "abcd"[panel])
        graphics.append(
            _graphic(
                rng,
                style,
                href_base,
                config,
                (*seed, k, panel),
                image_format=image_format,
                thumbnails=thumbs,
                aspect=aspect,
            )
        )
    if rng.random() < 0.15:  # some journals put everything in the caption paragraph
        title, body = None, f"{title} {body}"
    return FigureSpec(fig_id, label, concept, concept_group(concept), source, title, body, chart, tuple(graphics))


def _table(rng: random.Random, names: dict, style: JournalStyle, k: int, config: PlanConfig, seed: tuple) -> TableSpec:
    groups = rng.choice(text.GROUP_SETS)
    header = ("Characteristic", *groups)
    rows = tuple(
        (measure, *(f"{rng.uniform(1, 200):.1f} ± {rng.uniform(0.1, 30):.1f}" for _ in groups))
        for measure, _unit in rng.sample(text.MEASURES, rng.randint(3, 7))
    )
    title = rng.choice(("Baseline characteristics of the study population", "Clinical and laboratory findings",
                        "Results of the multivariable analysis", "Patient demographics"))  # fmt: skip
    href_base = style.table_href.format(k=k, **names)
    graphic = _graphic(
        rng, style, href_base, config, (*seed, 1000 + k), image_format="jpg", thumbnails=True, aspect=1.6
    )
    return TableSpec(style.table_id.format(k=k, **names), f"Table {k}", title, header, rows, graphic)


def _formula(rng: random.Random, names: dict, style: JournalStyle, k: int, seed: tuple) -> FormulaSpec:
    expression = rng.choice(("y = a + b x", "HR = exp(b)", "BMI = m / h^2", "S(t) = P(T > t)", "F = ma"))
    href_base = style.formula_href.format(k=k, **names)
    config = PlanConfig(image_sizes=(160, 240))
    graphic = _graphic(rng, style, href_base, config, (*seed, 2000 + k), image_format="jpg", thumbnails=False, aspect=5)
    return FormulaSpec(f"E{k}", expression, graphic)


def plan_article(seed: int, index: int, config: PlanConfig = PlanConfig()) -> ArticleSpec:
    """The article at position `index` of the mirror built with `seed`; depends on nothing else."""
    rng = random.Random(f"sample-mirror/{seed}/{index}")
    pmc_base, pmid_base = id_bases(seed)
    pmcid = f"PMC{pmc_base + 3 * index + rng.randrange(3)}"
    pmid = None if rng.random() < 0.06 else str(pmid_base + 4 * index + rng.randrange(4))
    journal = rng.choice(JOURNALS)
    style = STYLES[journal.style]
    year = rng.randint(max(journal.first_year, 2005), 2024)
    pub_date = date(year, 1, 1) + timedelta(days=rng.randrange(365))
    volume, issue = year - journal.first_year + 1, rng.randint(1, 12)
    number = 1000 + 7 * index + rng.randrange(7)
    names = {"code": journal.code, "n": number, "vol": volume, "year": year, "yy": year % 100, "issue": issue}
    names["stem"] = style.stem.format(**names)
    if style.elocation:
        pages = style.elocation.format(**names)
    else:
        first = rng.randint(1, 900)
        pages = f"{first}-{first + rng.randint(3, 14)}"
    updated_day = pub_date + timedelta(days=rng.randint(20, max(21, (date(2025, 6, 30) - pub_date).days)))
    last_updated = datetime(updated_day.year, updated_day.month, updated_day.day) + timedelta(
        seconds=rng.randrange(86_400)
    )
    disease = rng.choice(text.DISEASES)
    gene, method = rng.choice(text.GENES), rng.choice(text.METHODS)
    thumbnails = rng.random() < 0.6
    seed_prefix = (seed, index)
    figure_count = rng.choices(range(len(FIGURE_COUNT_WEIGHTS)), weights=FIGURE_COUNT_WEIGHTS)[0]
    figures = tuple(_figure(rng, names, style, k, config, seed_prefix, thumbnails) for k in range(1, figure_count + 1))
    table_count = rng.choices((0, 1, 2), weights=(4, 4, 2))[0]
    tables = tuple(_table(rng, names, style, k, config, seed_prefix) for k in range(1, table_count + 1))
    formulas = tuple(_formula(rng, names, style, k, seed_prefix) for k in range(1, 1 + (rng.random() < 0.15)))
    return ArticleSpec(
        index=index,
        pmcid=pmcid,
        pmid=pmid,
        doi=style.doi.format(**names),
        journal=journal,
        stem=names["stem"],
        title=text.article_title(rng, disease, gene, method),
        disease=disease,
        license=_weighted(rng, LICENSE_WEIGHTS),
        pub_date=pub_date,
        volume=volume,
        issue=issue,
        pages=pages,
        last_updated=last_updated,
        keywords=tuple(rng.sample((disease, gene, method, *text.ORGANS[:6]), rng.randint(3, 6))),
        authors=tuple(text.author_list(rng, rng.randint(2, 9))),
        figures=figures,
        tables=tables,
        formulas=formulas,
        text_seed=f"sample-mirror/{seed}/{index}/text",
    )
