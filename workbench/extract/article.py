"""Extract one PMC package: image-caption pairs, the article row and every problem, never an exception.

`extract_package` is pure and picklable (plain arguments in, an `ArticleResult` out, nothing written), so Dask
can run it in any worker. A figure with two graphics gives two pairs sharing the caption; figures without a
caption, graphics whose image is missing or unusable, and unsafe members become `ExtractError`s.

Sample JSON (BIOMEDICA field names plus ours): `image_set` is the list of keys of all pairs cut from the same
`<fig>` (this pair included, graphic order), so multi-panel figures stay groupable; `image_context` is the list
of in-line reference paragraphs; `image_hash` is the sha256 of the stored JPEG; the annotation fields are None
and `article_mesh_terms`/`article_reference_list` empty until later stages fill them. The article's full text
lives once per article in articles.parquet; the JSON carries it (as BIOMEDICA's `article_text`) only with
`ExtractConfig.full_text_in_shards`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.errors import UserError
from workbench.extract.images import ImageRejected, ImageRules, image_index, prepare_image, resolve_image
from workbench.extract.jats import Figure, JatsError, ParsedArticle, parse_article
from workbench.extract.package import MemberError, Package, PackageLimits, open_package
from workbench.extract.records import ArticleResult, ExtractError, FigurePair, key_figure_ids, make_key
from workbench.licenses import license_group
from workbench.tarwalk import DEFAULT_MAX_MEMBERS, DEFAULT_TIME_BUDGET_S

ANNOTATION_FIELDS = (
    "image_label_id",
    "image_panel_type",
    "image_panel_subtype",
    "image_primary_label",
    "image_secondary_label",
)


@dataclass(frozen=True)
class ExtractConfig:
    """Limits and choices for extracting one package (the CLI and notebooks build it)."""

    max_member_bytes: int = 200_000_000
    max_package_bytes: int = 2_000_000_000
    max_members: int = DEFAULT_MAX_MEMBERS  # entries one package may hold (reason `too_many_members`)
    package_time_budget_s: float = DEFAULT_TIME_BUDGET_S  # seconds to read one archive (`time_budget_exceeded`)
    max_image_pixels: int = 89_478_485
    min_side: int = 21  # images with a side <= 20 px are dropped
    jpeg_quality: int = 95
    include_full_text: bool = True  # the article text in articles.parquet
    full_text_in_shards: bool = False  # also in every sample's JSON, as BIOMEDICA's `article_text`

    def __post_init__(self) -> None:
        for name in (
            "max_member_bytes",
            "max_package_bytes",
            "max_members",
            "package_time_budget_s",
            "max_image_pixels",
            "min_side",
        ):
            if not getattr(self, name) > 0:
                raise UserError(f"ExtractConfig.{name} must be positive, got {getattr(self, name)!r}")
        if not 1 <= self.jpeg_quality <= 100:
            raise UserError(f"ExtractConfig.jpeg_quality must be in 1..100, got {self.jpeg_quality!r}")

    @property
    def package_limits(self) -> PackageLimits:
        return PackageLimits(
            self.max_member_bytes, self.max_package_bytes, self.max_members, self.package_time_budget_s
        )

    @property
    def image_rules(self) -> ImageRules:
        return ImageRules(self.max_image_pixels, self.min_side, self.jpeg_quality)


def extract_package(
    source: str | Path, config: ExtractConfig = ExtractConfig(), file_list_row: dict | None = None
) -> ArticleResult:
    """Pairs, article row and errors of one package (`.tar.gz`, extracted folder or bare `.nxml`).

    `file_list_row` (optional) gives {pmcid, license, citation, pmid, last_updated} from PMC's file list; its
    licence wins over the article's `<license>` when known, its pmcid is used when the XML carries none.
    """
    row = file_list_row or {}
    package = open_package(source, config.package_limits)
    errors = list(package.problems)
    name = str(source)
    fallback_pmcid = _known(row.get("pmcid")) or package.pmcid_from_name()
    parsed = _parse(package, config, errors)
    if parsed is None:
        return _result(name, fallback_pmcid, None, [], errors)
    pmcid = parsed.pmcid or fallback_pmcid
    if not pmcid:
        errors.append(ExtractError(name, "parse", "no_pmcid", "no PMCID in the XML, the file list or the name"))
        return _result(name, None, None, [], errors)
    article = _article_row(parsed, pmcid, row, name)
    pairs = _pairs(package, parsed, article, config, errors, row)
    article["pair_count"] = len(pairs)
    return _result(name, pmcid, article, pairs, errors)


def _known(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text if text and text not in ("0", "nan", "None") else None


def _result(name: str, pmcid: str | None, article, pairs, errors: list[ExtractError]) -> ArticleResult:
    errors = [error if error.pmcid else dataclasses.replace(error, pmcid=pmcid) for error in errors]
    return ArticleResult(package=name, pmcid=pmcid, article=article, pairs=pairs, errors=errors)


def _parse(package: Package, config: ExtractConfig, errors: list[ExtractError]) -> ParsedArticle | None:
    nxml_names = package.nxml_names
    if not nxml_names:
        errors.append(ExtractError(package.source, "package", "no_nxml", "no .nxml member to parse"))
        return None
    if len(nxml_names) > 1:
        errors.append(
            ExtractError(package.source, "member", "multiple_nxml", f"parsed {nxml_names[0]} of {nxml_names}")
        )
    try:
        xml = package.read(nxml_names[0])
        return parse_article(xml, full_text=config.include_full_text)
    except MemberError as error:
        errors.append(ExtractError(package.source, "member", error.reason, error.detail))
    except JatsError as error:
        errors.append(ExtractError(package.source, "parse", error.reason, f"{nxml_names[0]}: {error.detail}"))
    return None


def _article_row(parsed: ParsedArticle, pmcid: str, row: dict, name: str) -> dict[str, Any]:
    """One row of the articles catalog (data_catalog/schemas/articles.yaml); `pair_count` is set later."""
    licence = _known(row.get("license")) or parsed.license
    return {
        "pmcid": pmcid,
        "pmid": parsed.pmid or _known(row.get("pmid")),
        "doi": parsed.doi,
        "title": parsed.title,
        "journal": parsed.journal,
        "date": parsed.date,
        "year": parsed.year,
        "article_type": parsed.article_type,
        "subjects": list(parsed.subjects),
        "keywords": list(parsed.keywords),
        "license": licence,
        "license_group": license_group(licence),
        "abstract": parsed.abstract,
        "text": parsed.text,
        "reference_count": parsed.reference_count,
        "reference_pmids": list(parsed.reference_pmids),
        "figure_count": len(parsed.figures),
        "pair_count": 0,
        "package": name,
    }


@dataclass(frozen=True)
class _Cut:
    """One graphic that became a stored image, before its pair (which needs the figure's `image_set`)."""

    key: str
    graphic_index: int
    member: str
    image: Any


def _pairs(
    package: Package,
    parsed: ParsedArticle,
    article: dict[str, Any],
    config: ExtractConfig,
    errors: list[ExtractError],
    row: dict,
) -> list[FigurePair]:
    index = image_index(package.names)
    key_ids = key_figure_ids(figure.figure_id for figure in parsed.figures)
    pairs: list[FigurePair] = []
    for figure in parsed.figures:
        if not figure.caption:
            errors.append(ExtractError(package.source, "figure", "no_caption", figure.figure_id))
            continue
        if not figure.graphics:
            errors.append(ExtractError(package.source, "figure", "no_graphic", figure.figure_id))
            continue
        cuts = [
            cut
            for graphic_index, graphic in enumerate(figure.graphics)
            if (
                cut := _cut(
                    package,
                    index,
                    make_key(article["pmcid"], key_ids[figure.figure_id], graphic_index),
                    figure,
                    graphic_index,
                    graphic.hrefs,
                    config,
                    errors,
                )
            )
        ]
        image_set = [cut.key for cut in cuts]
        pairs.extend(_pair(cut, figure, article, image_set, row, config.full_text_in_shards) for cut in cuts)
    return pairs


def _cut(
    package: Package,
    index: dict[str, str],
    key: str,
    figure: Figure,
    graphic_index: int,
    hrefs: tuple[str, ...],
    config: ExtractConfig,
    errors: list[ExtractError],
) -> _Cut | None:
    where = f"{figure.figure_id} graphic {graphic_index}"
    member = next((found for href in hrefs if (found := resolve_image(href, index))), None)
    if member is None:
        errors.append(
            ExtractError(package.source, "figure", "missing_image", f"{where}: {', '.join(hrefs) or 'no href'}")
        )
        return None
    try:
        image = prepare_image(package.read(member), config.image_rules)
    except MemberError as error:
        errors.append(ExtractError(package.source, "member", error.reason, f"{where}: {error.detail}"))
        return None
    except ImageRejected as error:
        errors.append(ExtractError(package.source, "image", error.reason, f"{where} ({member}): {error.detail}"))
        return None
    return _Cut(key, graphic_index, member, image)


def _pair(
    cut: _Cut, figure: Figure, article: dict[str, Any], image_set: list[str], row: dict, full_text: bool
) -> FigurePair:
    image = cut.image
    references = list(figure.inline_references)
    catalog_row = {
        "key": cut.key,
        "pmcid": article["pmcid"],
        "pmid": article["pmid"],
        "doi": article["doi"],
        "figure_id": figure.figure_id,
        "figure_label": figure.label,
        "graphic_index": cut.graphic_index,
        "graphic_count": len(figure.graphics),
        "image_file_name": cut.member,
        "caption": figure.caption,
        "caption_length": len(figure.caption),
        "inline_references": references,
        "inline_reference_count": len(references),
        "width": image.width,
        "height": image.height,
        "image_sha256": image.sha256,
        "image_phash": image.phash,
        "source_format": image.source_format,
        "reencoded": image.reencoded,
        "license": article["license"],
        "license_group": article["license_group"],
        "article_title": article["title"],
        "article_journal": article["journal"],
        "article_date": article["date"],
        "article_year": article["year"],
        "article_type": article["article_type"],
        "article_subjects": list(article["subjects"]),
        "article_keywords": list(article["keywords"]),
        "article_mesh_terms": [],
    }
    sample = {
        "key": cut.key,
        "image_file_name": cut.member,
        "image_hash": image.sha256,
        "image_phash": image.phash,
        "image_size": [image.width, image.height],
        "image_context": references,
        "image_set": image_set,
        "article_accession_id": article["pmcid"],
        "article_title": article["title"],
        "article_journal": article["journal"],
        "article_date": article["date"].isoformat() if article["date"] else None,
        "article_year": article["year"],
        "article_type": article["article_type"],
        "article_abstract": article["abstract"],
        "article_mesh_terms": [],
        "article_keywords": list(article["keywords"]),
        "article_reference_ids": list(article["reference_pmids"]),
        "article_reference_count": article["reference_count"],
        "article_reference_list": [],
        "article_subject": list(article["subjects"]),
        "article_citation": _known(row.get("citation")),
        "article_license": article["license"],
        "license_group": article["license_group"],
        "pmid": article["pmid"],
        "doi": article["doi"],
        "figure_id": figure.figure_id,
        "figure_label": figure.label,
        "graphic_index": cut.graphic_index,
        "graphic_count": len(figure.graphics),
        "source_format": image.source_format,
        "reencoded": image.reencoded,
        **dict.fromkeys(ANNOTATION_FIELDS),
    }
    if full_text:  # BIOMEDICA's field name; off by default: the text is in articles.parquet once per article
        sample["article_text"] = article["text"]
    return FigurePair(key=cut.key, jpg=image.jpeg, caption=figure.caption, sample_json=sample, row=catalog_row)
