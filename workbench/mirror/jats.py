"""Write a planned article as JATS `.nxml` in the style PMC ships it (DOCTYPE by era, numeric character
references, `<fig>` with label/caption/graphic, figure cross-references, tables with images, a reference list)."""

from __future__ import annotations

import random
import re

from workbench.mirror import text
from workbench.mirror.plan import ArticleSpec, FigureSpec, FormulaSpec, TableSpec

DOCTYPES = (  # (first year, DOCTYPE exactly as in real PMC files, dtd-version attribute)
    (0, '<!DOCTYPE article PUBLIC "-//NLM//DTD Journal Archiving and Interchange DTD v2.3 20070202//EN" '
        '"archivearticle.dtd">', ""),
    (2014, '<!DOCTYPE article PUBLIC "-//NLM//DTD JATS (Z39.96) Journal Archiving and Interchange DTD v1.0 '
           '20120330//EN" "JATS-archivearticle1.dtd">', ""),
    (2020, '<!DOCTYPE article\nPUBLIC "-//NLM//DTD JATS (Z39.96) Journal Archiving and Interchange DTD with MathML3 '
           'v1.3 20210610//EN" "JATS-archivearticle1-3-mathml3.dtd">', ' dtd-version="1.3"'),
)  # fmt: skip
LICENSE_TERMS = {  # file-list licence -> (CC path, how the licence paragraph names it)
    "CC BY": ("by", "the Creative Commons Attribution License"),
    "CC0": ("publicdomain/zero", "the Creative Commons CC0 public domain dedication"),
    "CC BY-SA": ("by-sa", "the Creative Commons Attribution-ShareAlike License"),
    "CC BY-ND": ("by-nd", "the Creative Commons Attribution-NoDerivatives License"),
    "CC BY-NC": ("by-nc", "the Creative Commons Attribution-NonCommercial License"),
    "CC BY-NC-SA": ("by-nc-sa", "the Creative Commons Attribution-NonCommercial-ShareAlike License"),
    "CC BY-NC-ND": ("by-nc-nd", "the Creative Commons Attribution-NonCommercial-NoDerivs License"),
}
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def escape(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def license_url(license_name: str, year: int) -> str | None:
    """The creativecommons.org URL matching a file-list licence, or None for non-CC licences."""
    if license_name not in LICENSE_TERMS:
        return None
    path, _ = LICENSE_TERMS[license_name]
    if path.startswith("publicdomain"):
        return "https://creativecommons.org/publicdomain/zero/1.0/"
    return (
        f"https://creativecommons.org/licenses/{path}/4.0/"
        if year >= 2014
        else f"http://creativecommons.org/licenses/{path}/3.0/"
    )


def _license(article: ArticleSpec) -> str:
    year = article.pub_date.year
    url = license_url(article.license, year)
    if url is None:
        return (
            '<license license-type="open-access"><license-p>This article is made available under the '
            "publisher's own open access terms for the purposes of research and text mining."
            "</license-p></license>"
        )
    _, words = LICENSE_TERMS[article.license]
    ali = (
        f'<ali:license_ref xmlns:ali="http://www.niso.org/schemas/ali/1.0/" specific-use="textmining">{url}'
        "</ali:license_ref>"
        if year >= 2020
        else ""
    )
    return (
        f'<license license-type="open-access" xlink:href="{url}">{ali}<license-p>This is an open access article '
        f'distributed under the terms of {words} (<ext-link ext-link-type="uri" xlink:href="{url}">{url}</ext-link>)'
        ".</license-p></license>"
    )


def _date(tag: str, kind: str, day: int | None, month: int, year: int) -> str:
    day_part = f"<day>{day:02d}</day>" if day else ""
    return f'<{tag} pub-type="{kind}">{day_part}<month>{month}</month><year>{year}</year></{tag}>'


def _front(article: ArticleSpec, rng: random.Random) -> str:
    journal = article.journal
    ids = [f'<article-id pub-id-type="pmid">{article.pmid}</article-id>'] if article.pmid else []
    ids.append(f'<article-id pub-id-type="pmc">{article.pmcid.removeprefix("PMC")}</article-id>')
    ids.append(f'<article-id pub-id-type="doi">{escape(article.doi)}</article-id>')
    ids.append(f'<article-id pub-id-type="publisher-id">{escape(article.stem)}</article-id>')
    subjects = "".join(f"<subject>{escape(s)}</subject>" for s in (journal.subject,))
    disciplines = "".join(f"<subject>{escape(text.sentence_case(k))}</subject>" for k in article.keywords[:2])
    contribs = "".join(
        f'<contrib contrib-type="author"><name><surname>{escape(surname)}</surname>'
        f'<given-names>{escape(initials)}</given-names></name><xref ref-type="aff" rid="aff1"/></contrib>'
        for surname, initials in article.authors
    )
    pub = article.pub_date
    if article.pages.count("-") == 1 and article.pages.replace("-", "").isdigit():
        first, last = article.pages.split("-")
        pages = f"<fpage>{first}</fpage><lpage>{last}</lpage>"
    else:
        pages = f"<elocation-id>{escape(article.pages)}</elocation-id>"
    abstract = "".join(
        f"<sec><title>{heading}</title><p>{escape(text.paragraph(rng, article.disease, 2))}</p></sec>"
        for heading in ("Background", "Methods", "Results", "Conclusions")
    )
    keywords = "".join(f"<kwd>{escape(k)}</kwd>" for k in article.keywords)
    return (
        f'<front><journal-meta><journal-id journal-id-type="nlm-ta">{escape(journal.iso_abbrev)}</journal-id>'
        f'<journal-id journal-id-type="iso-abbrev">{escape(journal.iso_abbrev)}</journal-id>'
        f'<journal-id journal-id-type="publisher-id">{escape(journal.code)}</journal-id>'
        f"<journal-title-group><journal-title>{escape(journal.title)}</journal-title></journal-title-group>"
        f'<issn pub-type="epub">{journal.issn}</issn><publisher><publisher-name>{escape(journal.publisher)}'
        f"</publisher-name></publisher></journal-meta>\n<article-meta>{''.join(ids)}"
        f'<article-categories><subj-group subj-group-type="heading">{subjects}</subj-group>'
        f'<subj-group subj-group-type="Discipline">{disciplines}</subj-group></article-categories>'
        f"<title-group><article-title>{escape(article.title)}</article-title></title-group>"
        f'<contrib-group>{contribs}</contrib-group><aff id="aff1"><label>1</label>Department of '
        f"{rng.choice(('Radiology', 'Pathology', 'Medicine', 'Oncology'))}, University Hospital</aff>"
        f"{_date('pub-date', 'epub', pub.day, pub.month, pub.year)}"
        f"{_date('pub-date', 'collection', None, pub.month, pub.year)}"
        f"<volume>{article.volume}</volume><issue>{article.issue}</issue>{pages}"
        f"<permissions><copyright-statement>© {pub.year} The Author(s)</copyright-statement>"
        f"<copyright-year>{pub.year}</copyright-year>{_license(article)}</permissions>"
        f'<self-uri xlink:href="{escape(article.stem)}.pdf"/>'
        f"<abstract>{abstract}</abstract><kwd-group><title>Keywords</title>{keywords}</kwd-group>"
        "</article-meta></front>"
    )


def _graphic(href: str) -> str:
    return f'<graphic xlink:href="{escape(href)}" position="float"/>'


def _fig(figure: FigureSpec) -> str:
    title = f"<title>{escape(figure.caption_title)}</title>" if figure.caption_title else ""
    graphics = "".join(_graphic(g.href) for g in figure.graphics)
    return (
        f'<fig id="{escape(figure.fig_id)}" position="float"><label>{escape(figure.label)}</label>'
        f"<caption>{title}<p>{escape(figure.caption_text)}</p></caption>{graphics}</fig>"
    )


def _table(table: TableSpec) -> str:
    head = "".join(f"<th>{escape(cell)}</th>" for cell in table.header)
    rows = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in table.rows)
    return (
        f'<table-wrap id="{escape(table.table_id)}" position="float"><label>{table.label}</label>'
        f"<caption><title>{escape(table.title)}</title></caption>{_graphic(table.graphic.href)}"
        f'<table frame="hsides" rules="groups"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'
        "<table-wrap-foot><fn><p>Values are mean ± SD.</p></fn></table-wrap-foot></table-wrap>"
    )


def _formula(formula: FormulaSpec) -> str:
    return (
        f'<disp-formula id="{formula.formula_id}"><label>({formula.formula_id.removeprefix("E")})</label>'
        f"{_graphic(formula.graphic.href)}</disp-formula>"
    )


def _fig_xref(figures: tuple[FigureSpec, ...], shown: str) -> str:
    rid = " ".join(f.fig_id for f in figures)
    return f'<xref ref-type="fig" rid="{escape(rid)}">{shown}</xref>'


def _results(article: ArticleSpec, rng: random.Random) -> str:
    """Results paragraphs that cite every figure (sometimes two at once, `rid="F1 F2"`), figures after them."""
    parts, figures, position = [], article.figures, 0
    while position < len(figures):
        together = 2 if position + 1 < len(figures) and rng.random() < 0.25 else 1
        group = figures[position : position + together]
        numbers = [f.label.split()[-1] for f in group]
        shown = f"Figure {numbers[0]}" if together == 1 else f"Figures {numbers[0]} and {numbers[1]}"
        lead = text.paragraph(rng, article.disease, 2)
        parts.append(f"<p>{escape(lead)} These results are shown in {_fig_xref(group, shown)}.</p>")
        parts.extend(_fig(f) for f in group)
        position += together
    for table in article.tables:
        parts.append(
            f"<p>{escape(text.paragraph(rng, article.disease, 2))} Details are given in "
            f'<xref ref-type="table" rid="{escape(table.table_id)}">{table.label}</xref>.</p>{_table(table)}'
        )
    if figures and rng.random() < 0.5:
        again = figures[0]
        parts.append(f"<p>As noted above ({_fig_xref((again,), 'Figure ' + again.label.split()[-1])}), "
                     f"{escape(text.paragraph(rng, article.disease, 1))}</p>")  # fmt: skip
    return "".join(parts)


def _references(rng: random.Random, count: int) -> str:
    refs = []
    for number in range(1, count + 1):
        authors = "".join(
            f"<name><surname>{escape(surname)}</surname><given-names>{initials}</given-names></name>"
            for surname, initials in text.author_list(rng, rng.randint(1, 4))
        )
        year = rng.randint(1995, 2024)
        pmid = f'<pub-id pub-id-type="pmid">{rng.randint(8_000_000, 39_000_000)}</pub-id>' if rng.random() < 0.6 else ""
        refs.append(
            f'<ref id="B{number}"><label>{number}</label><element-citation publication-type="journal">'
            f'<person-group person-group-type="author">{authors}</person-group>'
            f"<article-title>{escape(text.reference_title(rng))}</article-title>"
            f"<source>{rng.choice(text.REF_JOURNALS)}</source><year>{year}</year>"
            f"<volume>{rng.randint(1, 400)}</volume><fpage>{rng.randint(1, 900)}</fpage>"
            f'<pub-id pub-id-type="doi">10.{rng.randint(1000, 9999)}/ref.{year}.{number}</pub-id>{pmid}'
            "</element-citation></ref>"
        )
    return f"<ref-list><title>References</title>{''.join(refs)}</ref-list>"


def article_xml(article: ArticleSpec) -> bytes:
    """The `.nxml` bytes: ASCII, non-ASCII characters as `&#x0XXXX;` references, like PMC's files."""
    rng = random.Random(article.text_seed)
    doctype, dtd_version = next((d, v) for year, d, v in reversed(DOCTYPES) if article.pub_date.year >= year)
    bibr = "".join(f'<xref ref-type="bibr" rid="B{n}">{n}</xref>' for n in (1, 2))
    introduction = (
        f"<p>{escape(text.paragraph(rng, article.disease, 4))} [{bibr}]</p>"
        f"<p>{escape(text.paragraph(rng, article.disease, 3))}</p>"
    )
    formulas = "".join(_formula(f) for f in article.formulas)
    methods = f"<p>{escape(text.paragraph(rng, article.disease, 4))}</p>{formulas}"
    discussion = "".join(f"<p>{escape(text.paragraph(rng, article.disease, 3))}</p>" for _ in range(2))
    body = (
        f'<body><sec id="s1"><title>Introduction</title>{introduction}</sec>'
        f'<sec id="s2"><title>Methods</title>{methods}</sec>'
        f'<sec id="s3"><title>Results</title>{_results(article, rng)}</sec>'
        f'<sec id="s4"><title>Discussion</title>{discussion}</sec></body>'
    )
    document = (
        f'{doctype}\n<article xmlns:mml="http://www.w3.org/1998/Math/MathML" '
        f'xmlns:xlink="http://www.w3.org/1999/xlink"{dtd_version} xml:lang="en" article-type="research-article">'
        f"<?properties open_access?>{_front(article, rng)}\n{body}\n<back>{_references(rng, rng.randint(6, 25))}"
        "</back>\n</article>\n"
    )
    return _NON_ASCII.sub(lambda m: f"&#x{ord(m.group()):05x};", document).encode("ascii")
