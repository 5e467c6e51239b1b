"""Parse one JATS article (`.nxml`) with lxml, once: metadata, figures with captions and in-line references, text.

The parser never touches the network, never loads the DTD named in the DOCTYPE and never expands entities
(an entity reference is dropped, except the fixed HTML character names such as `&nbsp;`, which become their
character). Text is flattened with inline markup joined as written ("dT<sub>40</sub>" -> "dT40"), block
elements (title, p, list items, ...) separated, whitespace normalised (`jatstext.normalise_space`), unicode kept.
LaTeX sources (`<tex-math>`) are left out of text; MathML keeps its characters. Figures and tables are left
out of the body text and of the paragraphs quoted as in-line references (captions are kept per figure).
"""

from __future__ import annotations

import datetime as dt
import html.entities
import re
import threading
from dataclasses import dataclass

from lxml import etree

from workbench.extract.jatstext import (
    block_text,
    detach,
    find_in,
    flat_text,
    iter_in,
    mark_blocks,
    unique,
)

XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
ARTICLE_SET = "pmc-articleset"  # E-utilities' wrapper around one or more <article>
ALI_LICENSE_REF = "{http://www.niso.org/schemas/ali/1.0/}license_ref"
DROPPED_TAGS = ("tex-math",)
FLOAT_TAGS = ("fig", "fig-group", "table-wrap", "table-wrap-group")  # left out of paragraph and body text
_PARSER_OPTIONS = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "dtd_validation": False,
    "huge_tree": False,
    "remove_comments": True,
    "remove_pis": True,
}
_MONTHS = {
    name: n
    for n, name in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)
}
_CC_URL = re.compile(r"creativecommons\.org/(licenses|publicdomain)/([a-z-]+)(?:/(\d+(?:\.\d+)?))?", re.IGNORECASE)
_CC_TEXT = (  # most specific first
    (re.compile(r"attribution[-\s]+non-?commercial[-\s]+share[-\s]?alike", re.I), "CC BY-NC-SA"),
    (re.compile(r"attribution[-\s]+non-?commercial[-\s]+no[-\s]?deriv", re.I), "CC BY-NC-ND"),
    (re.compile(r"attribution[-\s]+non-?commercial", re.I), "CC BY-NC"),
    (re.compile(r"attribution[-\s]+share[-\s]?alike", re.I), "CC BY-SA"),
    (re.compile(r"attribution[-\s]+no[-\s]?deriv", re.I), "CC BY-ND"),
    (re.compile(r"creative\s+commons\s+attribution", re.I), "CC BY"),
    (re.compile(r"\bCC0\b|public\s+domain\s+dedication", re.I), "CC0"),
)
_local = threading.local()


class JatsError(ValueError):
    """The XML cannot be used as an article (`reason`: malformed_xml | not_jats)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Graphic:
    """One image of a figure: its `xlink:href` candidates (several only inside `<alternatives>`)."""

    hrefs: tuple[str, ...]


@dataclass(frozen=True)
class Figure:
    """A `<fig>` (anywhere: body, `<fig-group>`, `<floats-group>`, appendices) with every graphic it holds."""

    figure_id: str
    label: str | None
    caption: str
    graphics: tuple[Graphic, ...]
    inline_references: tuple[str, ...]


@dataclass(frozen=True)
class ParsedArticle:
    """Everything extraction needs from one article; `figures` in document order."""

    pmcid: str | None
    pmid: str | None
    doi: str | None
    title: str
    journal: str | None
    date: dt.date | None
    year: int | None
    article_type: str | None
    subjects: tuple[str, ...]
    keywords: tuple[str, ...]
    license: str | None
    abstract: str
    text: str
    reference_count: int
    reference_pmids: tuple[str, ...]
    figures: tuple[Figure, ...]


def parse_article(xml: bytes, *, full_text: bool = True) -> ParsedArticle:
    """Parse one article's XML; raise `JatsError` when it is malformed or not a JATS `<article>`.

    A `<pmc-articleset>` (what E-utilities `efetch db=pmc` returns) is unwrapped to its first `<article>`.
    """
    root = _parse(xml)
    front = root.find("front")
    meta = front.find("article-meta") if front is not None else None
    journal_meta = front.find("journal-meta") if front is not None else None
    floats = _drop_unwanted(root)
    ids = _article_ids(meta)
    date, year = _publication_date(meta)
    figures = _figures([node for node in floats if node.tag == "fig"])  # before floats are emptied
    for node in floats:  # empty, not removed: removing walks the tree, emptying only frees the float's content
        node.clear(keep_tail=True)
    body = root.find("body")
    if body is not None:
        mark_blocks(body)  # once, for the full text and the paragraphs citing figures
    inline = _inline_references(root, figures, body)
    back = root.find("back")
    reference_count, reference_pmids = _references(back)
    return ParsedArticle(
        pmcid=ids.get("pmcid"),
        pmid=ids.get("pmid"),
        doi=ids.get("doi"),
        title=flat_text(find_in(meta, "title-group/article-title")),
        journal=_journal(journal_meta),
        date=date,
        year=year,
        article_type=root.get("article-type") or None,
        subjects=unique(flat_text(s) for s in iter_in(find_in(meta, "article-categories"), "subject")),
        keywords=unique(flat_text(k) for k in iter_in(meta, "kwd")),
        license=_license(meta),
        abstract=_abstract(meta),
        text=block_text(body, marked=True) if full_text else "",
        reference_count=reference_count,
        reference_pmids=reference_pmids,
        figures=tuple(
            Figure(f.figure_id, f.label, f.caption, f.graphics, inline.get(f.figure_id, ())) for f in figures
        ),
    )


# ---------------------------------------------------------------------------------------------- tree


def _parser() -> etree.XMLParser:
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = etree.XMLParser(**_PARSER_OPTIONS)
    return parser


def _parse(xml: bytes) -> etree._Element:
    try:
        root = etree.fromstring(xml, _parser())
    except (etree.XMLSyntaxError, ValueError) as error:
        raise JatsError("malformed_xml", str(error)) from error
    if root is None:
        raise JatsError("malformed_xml", "empty document")
    if etree.QName(root).localname == ARTICLE_SET:  # what E-utilities `efetch db=pmc` returns: take the first
        article = next((child for child in root if _local_name(child) == "article"), None)
        if article is None:
            raise JatsError("not_jats", f"<{ARTICLE_SET}> holds no <article>")
        root.remove(article)  # nothing outside the article stays reachable
        root = article
    _drop_namespace(root)
    if root.tag != "article":
        raise JatsError("not_jats", f"root element is <{root.tag}>, not <article>")
    return root


def _local_name(element: etree._Element) -> str | None:
    return etree.QName(element).localname if isinstance(element.tag, str) else None


def _drop_namespace(root: etree._Element) -> None:
    """Drop the root's namespace from every element in it (e.g. the old {http://dtd.nlm.nih.gov/2.0/xsd/
    archivearticle} files), so the rest of the parser reads plain JATS tag names."""
    namespace = etree.QName(root).namespace
    if namespace:
        prefix = "{" + namespace + "}"
        for element in root.iter(prefix + "*"):
            element.tag = element.tag[len(prefix) :]


def _drop_unwanted(root: etree._Element) -> list[etree._Element]:
    """Drop entity references and LaTeX sources (one walk); return the floats, emptied later."""
    floats = []
    for node in list(root.iter(etree.Entity, *DROPPED_TAGS, *FLOAT_TAGS)):
        tag = node.tag
        if tag is etree.Entity:
            codepoint = html.entities.name2codepoint.get(node.name)
            detach(node, replacement=chr(codepoint) if codepoint else "")
        elif tag in DROPPED_TAGS:
            detach(node)
        else:
            floats.append(node)
    return floats


# ---------------------------------------------------------------------------------------------- metadata


def _article_ids(meta: etree._Element | None) -> dict[str, str]:
    ids: dict[str, str] = {}
    for element in iter_in(meta, "article-id"):
        kind = (element.get("pub-id-type") or "").lower()
        value = flat_text(element)
        if not value:
            continue
        if kind in ("pmc", "pmcid") and "pmcid" not in ids:
            digits = re.search(r"\d+", value)
            if digits:
                ids["pmcid"] = "PMC" + digits.group(0)
        elif kind == "pmid" and value.isdigit():
            ids.setdefault("pmid", value)
        elif kind == "doi":
            ids.setdefault("doi", value)
    return ids


def _journal(journal_meta: etree._Element | None) -> str | None:
    for path in ("journal-title-group/journal-title", "journal-title", "journal-id[@journal-id-type='nlm-ta']"):
        title = flat_text(find_in(journal_meta, path))
        if title:
            return title
    return None


def _date_rank(pub_date: etree._Element) -> int:
    kind = (pub_date.get("pub-type") or pub_date.get("date-type") or "").lower()
    medium = (pub_date.get("publication-format") or "").lower()
    if kind == "epub" or (kind == "pub" and medium == "electronic"):
        return 0
    if kind in ("ppub", "epub-ppub", "pub"):
        return 1
    if kind == "collection":
        return 2
    return 3


def _date_parts(pub_date: etree._Element) -> tuple[int | None, int | None, int | None]:
    def number(tag: str) -> int | None:
        element = pub_date.find(tag)
        value = (element.text or "").strip() if element is not None else ""
        if value.isdigit():
            return int(value)
        return _MONTHS.get(value[:3].lower()) if tag == "month" and value else None

    return number("year"), number("month"), number("day")


def _publication_date(meta: etree._Element | None) -> tuple[dt.date | None, int | None]:
    """Best full publication date (electronic, then print, then collection) and the year of the best one."""
    year: int | None = None
    for pub_date in sorted(iter_in(meta, "pub-date"), key=_date_rank):
        y, m, d = _date_parts(pub_date)
        year = year or y
        if y and m and d:
            try:
                return dt.date(y, m, d), y
            except ValueError:
                continue
    return None, year


def _license(meta: etree._Element | None) -> str | None:
    """Licence name ("CC BY 4.0", "CC0", ...) from `<license>` links or wording, else from the copyright text."""
    permissions = find_in(meta, "permissions")
    scope = permissions if permissions is not None else meta
    elements = list(iter_in(scope, "license", "copyright-statement"))
    links: list[str] = []
    for element in elements:
        links.append(element.get(XLINK_HREF) or "")
        links.extend(ref.text or "" for ref in element.iter(ALI_LICENSE_REF))
        links.extend(link.get(XLINK_HREF) or "" for link in element.iter("ext-link", "uri"))
    texts = [link for link in links if link]
    if not any("creativecommons.org" in link for link in texts):
        texts += [flat_text(element) for element in elements]
    for text in texts:
        match = _CC_URL.search(text)
        if match:
            return _cc_name(match.group(1).lower(), match.group(2).lower(), match.group(3))
    for text in texts:
        for pattern, name in _CC_TEXT:
            if pattern.search(text):
                return name
    return None


def _cc_name(kind: str, code: str, version: str | None) -> str:
    if kind == "publicdomain":
        return "CC0" if code == "zero" else "Public Domain Mark" if code == "mark" else f"Public Domain {code}"
    name = "CC " + code.upper()
    return f"{name} {version}" if version else name


def _abstract(meta: etree._Element | None) -> str:
    abstracts = list(iter_in(meta, "abstract"))
    main = [a for a in abstracts if not a.get("abstract-type")] or abstracts[:1]
    return "\n".join(text for text in (block_text(a) for a in main) if text)


def _references(back: etree._Element | None) -> tuple[int, tuple[str, ...]]:
    """Number of `<ref>` in the back matter and the PMIDs they cite."""
    if back is None:
        return 0, ()
    count = sum(1 for _ in back.iter("ref"))  # two tag-filtered walks: cheaper than reading `.tag` on each node
    pmids: dict[str, None] = {}
    for element in back.iter("pub-id"):
        if element.get("pub-id-type") == "pmid":
            value = (element.text or "").strip()
            if value.isdigit():
                pmids[value] = None
    return count, tuple(pmids)


# ---------------------------------------------------------------------------------------------- figures


@dataclass(frozen=True)
class _FigureDraft:
    figure_id: str
    label: str | None
    caption: str
    graphics: tuple[Graphic, ...]
    group_id: str | None


def _figures(figs: list[etree._Element]) -> list[_FigureDraft]:
    figures: list[_FigureDraft] = []
    seen: set[str] = set()
    for number, fig in enumerate(figs, 1):
        figure_id = fig.get("id") or f"fig-{number}"
        while figure_id in seen:  # duplicate ids would give duplicate keys
            figure_id += "-dup"
        seen.add(figure_id)
        label = flat_text(fig.find("label")) or None
        group = next(fig.iterancestors("fig-group"), None)
        figures.append(
            _FigureDraft(
                figure_id,
                label,
                flat_text(fig.find("caption"), blocks=True),
                _graphics(fig),
                group.get("id") if group is not None else None,
            )
        )
    return figures


def _graphics(fig: etree._Element) -> tuple[Graphic, ...]:
    """Every `<graphic>` of this figure (not of a nested figure, not inside its caption), in order.

    The graphics inside one `<alternatives>` are the same image in several formats: they make one `Graphic`.
    """
    slots: list[list[str]] = []
    slot_of_alternatives: dict[etree._Element, int] = {}
    for graphic in fig.iter("graphic"):
        alternatives = None
        ancestor = graphic.getparent()
        while ancestor is not fig and ancestor.tag not in ("fig", "caption"):
            if ancestor.tag == "alternatives":
                alternatives = ancestor
            ancestor = ancestor.getparent()
        if ancestor is not fig:
            continue
        href = (graphic.get(XLINK_HREF) or graphic.get("href") or "").strip()
        if alternatives is None:
            slots.append([href])
            continue
        if alternatives not in slot_of_alternatives:
            slot_of_alternatives[alternatives] = len(slots)
            slots.append([])
        slots[slot_of_alternatives[alternatives]].append(href)
    return tuple(Graphic(tuple(hrefs)) for hrefs in slots)


def _inline_references(
    root: etree._Element, figures: list[_FigureDraft], marked: etree._Element | None
) -> dict[str, tuple[str, ...]]:
    """Figure id -> text of each paragraph citing it with `<xref ref-type="fig" rid="...">` (rid lists too).

    Runs once figures and tables are emptied: xrefs inside them are not in-line text. Blocks under `marked`
    already carry their block marks.
    """
    if not figures:  # nothing to cite: skip walking every `<xref>`
        return {}
    targets: dict[str, list[str]] = {}
    for figure in figures:
        targets.setdefault(figure.figure_id, []).append(figure.figure_id)
        if figure.group_id:
            targets.setdefault(figure.group_id, []).append(figure.figure_id)
    cited: dict[str, dict[str, None]] = {}
    paragraph_texts: dict[etree._Element, str] = {}
    for xref in root.iter("xref"):
        if xref.get("ref-type") not in ("fig", None):
            continue
        figure_ids = [f for rid in (xref.get("rid") or "").split() for f in targets.get(rid, ())]
        if not figure_ids:
            continue
        paragraph = next(xref.iterancestors("p"), None)
        if paragraph is None:
            continue
        text = paragraph_texts.get(paragraph)
        if text is None:
            inside_marked = marked is not None and any(a is marked for a in paragraph.iterancestors())
            text = paragraph_texts[paragraph] = flat_text(paragraph, blocks=not inside_marked)
        for figure_id in figure_ids:
            cited.setdefault(figure_id, {})[text] = None
    return {figure_id: tuple(texts) for figure_id, texts in cited.items()}
