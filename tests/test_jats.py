"""JATS parsing: figures everywhere they occur, captions, in-line references, metadata, entity safety."""

from __future__ import annotations

import datetime as dt
import http.server
import re
import shutil
import threading

import pytest

from workbench.extract.jats import JatsError, parse_article
from workbench.extract.jatstext import normalise_space

NS = 'xmlns:xlink="http://www.w3.org/1999/xlink" xmlns:mml="http://www.w3.org/1998/Math/MathML"'


def article(body: str = "", front: str = "", back: str = "", after: str = "", doctype: str = "") -> bytes:
    return (
        f'<?xml version="1.0"?>{doctype}<article {NS} article-type="research-article">'
        f"<front><article-meta>{front}</article-meta></front><body>{body}</body><back>{back}</back>{after}</article>"
    ).encode()


def fig(fig_id: str, *hrefs: str, caption: str = "<p>Cap.</p>") -> str:
    graphics = "".join(f'<graphic xlink:href="{href}"/>' for href in hrefs)
    return f'<fig id="{fig_id}"><label>Figure {fig_id}</label><caption>{caption}</caption>{graphics}</fig>'


def figures_by_id(xml: bytes):
    return {figure.figure_id: figure for figure in parse_article(xml).figures}


def test_figures_in_body_fig_group_floats_group_and_appendix():
    body = f'<sec><p>Text.</p>{fig("F1", "f1")}<fig-group id="G1">{fig("F2", "f2")}{fig("F3", "f3")}</fig-group></sec>'
    back = f'<app-group><app id="A1"><title>Appendix</title>{fig("F4", "f4")}</app></app-group>'
    after = f"<floats-group>{fig('F5', 'f5')}</floats-group>"
    figures = parse_article(article(body, back=back, after=after)).figures
    assert [f.figure_id for f in figures] == ["F1", "F2", "F3", "F4", "F5"]
    assert [f.graphics[0].hrefs for f in figures] == [("f1",), ("f2",), ("f3",), ("f4",), ("f5",)]


def test_every_graphic_of_a_figure_and_alternatives_count_once():
    two = fig("F1", "f1a", "f1b")
    alternatives = (
        '<fig id="F2"><caption><p>Alt.</p></caption>'
        '<alternatives><graphic xlink:href="f2.tif"/><graphic xlink:href="f2.jpg"/></alternatives></fig>'
    )
    figures = figures_by_id(article(two + alternatives))
    assert [g.hrefs for g in figures["F1"].graphics] == [("f1a",), ("f1b",)]
    assert [g.hrefs for g in figures["F2"].graphics] == [("f2.tif", "f2.jpg")]


def test_table_formula_and_inline_graphics_are_not_figures():
    body = (
        '<p>See <inline-graphic xlink:href="i1"/>.</p>'
        '<table-wrap id="T1"><caption><p>Table.</p></caption><graphic xlink:href="t1"/></table-wrap>'
        '<disp-formula id="E1"><graphic xlink:href="e1"/></disp-formula>'
        + fig("F1", "f1", caption='<p>With <inline-graphic xlink:href="x"/> inline.</p>')
    )
    figures = parse_article(article(body)).figures
    assert [(f.figure_id, [g.hrefs for g in f.graphics]) for f in figures] == [("F1", [("f1",)])]


def test_caption_flattening_title_paragraphs_markup_whitespace_unicode():
    caption = (
        "<title>Effect of  <italic>Mcm4</italic>\n on DNA.</title>"
        "<p>(<bold>A</bold>) dT<sub>40</sub> with [&#945;-<sup>32</sup>P]dGTP&#160;&#8211; 5&#8242; ends"
        "<inline-formula><alternatives><tex-math>\\documentclass{minimal}$x$</tex-math>"
        "<mml:math><mml:mi>x</mml:mi></mml:math></alternatives></inline-formula>.</p>"
        "<p>Second\tparagraph.</p>"
    )
    figure = parse_article(article(fig("F1", "f1", caption=caption))).figures[0]
    assert figure.caption == "Effect of Mcm4 on DNA. (A) dT40 with [α-32P]dGTP – 5′ endsx. Second paragraph."
    assert figure.label == "Figure F1"


def test_figure_without_caption_or_graphic_is_kept_for_the_caller_to_record():
    body = (
        '<fig id="F1"><label>Figure 1</label><graphic xlink:href="f1"/></fig>'
        '<fig id="F2"><caption><p>C</p></caption></fig>'
    )
    figures = figures_by_id(article(body))
    assert figures["F1"].caption == "" and figures["F1"].graphics
    assert figures["F2"].caption == "C" and figures["F2"].graphics == ()


def test_missing_and_duplicate_figure_ids_get_unique_ids():
    body = '<fig><caption><p>a</p></caption></fig><fig id="X"><caption><p>b</p></caption></fig><fig id="X"/>'
    assert [f.figure_id for f in parse_article(article(body)).figures] == ["fig-1", "X", "X-dup"]


def test_inline_references_rid_lists_groups_dedup_and_floats_excluded():
    body = (
        '<sec><p>First cites <xref ref-type="fig" rid="F1 F2">Figs 1, 2</xref> and '
        '<xref ref-type="fig" rid="F1">1</xref> again.</p>'
        '<p>Group: <xref ref-type="fig" rid="G1">Fig 3</xref>; table <xref ref-type="table" rid="F1">T</xref>.</p>'
        '<p>A float inside a paragraph<fig id="F1"><caption><p>One, see <xref ref-type="fig" rid="F2">2</xref>.'
        '</p></caption><graphic xlink:href="f1"/></fig> is not part of its text.</p>'
        + fig("F2", "f2")
        + f'<fig-group id="G1">{fig("F3", "f3")}</fig-group>'
        + fig("F4", "f4")
        + "</sec>"
    )
    figures = figures_by_id(article(body))
    first = "First cites Figs 1, 2 and 1 again."
    assert figures["F1"].inline_references == (first,)
    assert figures["F2"].inline_references == (first,)
    assert figures["F3"].inline_references == ("Group: Fig 3; table T.",)
    assert figures["F4"].inline_references == ()
    assert "float" not in " ".join(figures["F1"].inline_references)


def test_metadata():
    front = (
        '<article-id pub-id-type="pmid">17205137</article-id><article-id pub-id-type="pmc">1762412</article-id>'
        '<article-id pub-id-type="doi">10.1371/journal.pone.0000133</article-id>'
        '<article-categories><subj-group subj-group-type="heading"><subject>Research Article</subject>'
        "<subj-group><subject>Oceanography</subject></subj-group></subj-group></article-categories>"
        "<title-group><article-title>The <italic>Sound</italic> of Vents</article-title></title-group>"
        '<pub-date pub-type="collection"><year>2006</year></pub-date>'
        '<pub-date pub-type="epub"><day>27</day><month>12</month><year>2006</year></pub-date>'
        '<permissions><license license-type="open-access" xlink:href="http://creativecommons.org/licenses/by-nc/3.0/">'
        "<license-p>Text</license-p></license></permissions>"
        "<abstract><p>First.</p><p>Second.</p></abstract><abstract abstract-type='summary'><p>Lay.</p></abstract>"
        "<kwd-group><kwd>sound</kwd><kwd>vents</kwd><kwd>sound</kwd></kwd-group>"
    )
    back = (
        '<ref-list><ref id="B1"><mixed-citation>A. <pub-id pub-id-type="pmid">111</pub-id></mixed-citation></ref>'
        '<ref id="B2"><element-citation><pub-id pub-id-type="doi">10.1/x</pub-id></element-citation></ref>'
        '<ref id="B3"><mixed-citation><pub-id pub-id-type="pmid">222</pub-id></mixed-citation></ref></ref-list>'
    )
    body = "<sec><title>Intro</title><p>Para one.</p><p>Para <bold>two</bold>.</p></sec>"
    xml = article(body, front=front, back=back).replace(
        b"<front>",
        b"<front><journal-meta><journal-title-group><journal-title>PLoS ONE</journal-title>"
        b"</journal-title-group></journal-meta>",
    )
    parsed = parse_article(xml)
    assert (parsed.pmcid, parsed.pmid, parsed.doi) == ("PMC1762412", "17205137", "10.1371/journal.pone.0000133")
    assert parsed.title == "The Sound of Vents"
    assert parsed.journal == "PLoS ONE"
    assert (parsed.date, parsed.year) == (dt.date(2006, 12, 27), 2006)
    assert parsed.article_type == "research-article"
    assert parsed.subjects == ("Research Article", "Oceanography")
    assert parsed.keywords == ("sound", "vents")
    assert parsed.license == "CC BY-NC 3.0"
    assert parsed.abstract == "First.\nSecond."
    assert parsed.text == "Intro\nPara one.\nPara two."
    assert (parsed.reference_count, parsed.reference_pmids) == (3, ("111", "222"))
    assert parse_article(xml, full_text=False).text == ""


@pytest.mark.parametrize(
    ("permissions", "expected"),
    [
        ('<license xlink:href="http://creativecommons.org/publicdomain/zero/1.0/"/>', "CC0"),
        ("<license><ali:license_ref xmlns:ali='http://www.niso.org/schemas/ali/1.0/'>"
         "https://creativecommons.org/licenses/by/4.0/</ali:license_ref></license>", "CC BY 4.0"),
        ("<copyright-statement>This is an open-access article distributed under the terms of the Creative "
         "Commons Attribution License.</copyright-statement>", "CC BY"),
        ("<license><license-p>Creative Commons Attribution-NonCommercial-NoDerivatives</license-p></license>",
         "CC BY-NC-ND"),
        ('<license license-type="open-access"><license-p>Free to read.</license-p></license>', None),
    ],
)  # fmt: skip
def test_license_variants(permissions, expected):
    assert parse_article(article(front=f"<permissions>{permissions}</permissions>")).license == expected


def test_dates_prefer_full_electronic_date_and_month_names():
    front = (
        '<pub-date pub-type="ppub"><month>Jul</month><year>2010</year></pub-date>'
        '<pub-date pub-type="epub"><day>16</day><month>Jul</month><year>2010</year></pub-date>'
    )
    assert parse_article(article(front=front)).date == dt.date(2010, 7, 16)
    only_year = parse_article(article(front='<pub-date pub-type="ppub"><year>2009</year></pub-date>'))
    assert (only_year.date, only_year.year) == (None, 2009)


def test_namespaced_root_is_read():
    xml = (
        b'<article xmlns="http://dtd.nlm.nih.gov/2.0/xsd/archivearticle" xmlns:xlink="http://www.w3.org/1999/xlink">'
        b'<front><article-meta><article-id pub-id-type="pmc">3357053</article-id></article-meta></front>'
        b'<body><fig id="F1"><caption><p>Cap</p></caption><graphic xlink:href="f1"/></fig></body></article>'
    )
    parsed = parse_article(xml)
    assert parsed.pmcid == "PMC3357053"
    assert [(f.figure_id, f.caption) for f in parsed.figures] == [("F1", "Cap")]


def test_malformed_and_non_jats_raise_jats_error():
    with pytest.raises(JatsError) as malformed:
        parse_article(b"<article><front>")
    assert malformed.value.reason == "malformed_xml"
    with pytest.raises(JatsError) as other:
        parse_article(b"<html><body/></html>")
    assert other.value.reason == "not_jats"
    with pytest.raises(JatsError):
        parse_article(b"")


def test_external_entity_is_never_resolved():
    doctype = '<!DOCTYPE article [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    parsed = parse_article(article(fig("F1", "f1", caption="<p>Before &x; after.</p>"), doctype=doctype))
    assert parsed.figures[0].caption == "Before after."
    assert "root:" not in repr(parsed)


def test_billion_laughs_is_refused_not_expanded():
    lol = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    doctype = f'<!DOCTYPE article [<!ENTITY l0 "lol">{lol}]>'
    with pytest.raises(JatsError):
        parse_article(article("<p>&l9;</p>", doctype=doctype))


def test_small_internal_entity_is_dropped_and_html_names_become_characters():
    doctype = '<!DOCTYPE article PUBLIC "-//NLM//DTD JATS//EN" "JATS-archivearticle1.dtd" [<!ENTITY sec "secret">]>'
    caption = "<p>A&nbsp;b &sec; c&beta;.</p>"
    figure = parse_article(article(fig("F1", "f1", caption=caption), doctype=doctype)).figures[0]
    assert figure.caption == "A b c\u03b2."


class _CountingHandler(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server API)
        self.hits.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b'<!ENTITY x "fetched">')

    def log_message(self, *args):
        pass


def test_dtd_and_external_entities_are_never_fetched():
    server = http.server.HTTPServer(("127.0.0.1", 0), _CountingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        doctype = f'<!DOCTYPE article SYSTEM "{url}/archivearticle.dtd" [<!ENTITY y SYSTEM "{url}/y">]>'
        parsed = parse_article(article(fig("F1", "f1", caption="<p>a &y; b</p>"), doctype=doctype))
    finally:
        server.shutdown()
        server.server_close()
    assert _CountingHandler.hits == []
    assert parsed.figures[0].caption == "a b"


def test_normalise_space_keeps_unicode():
    assert normalise_space("a \n\t b\u00a0\u00a0c \u2009d  é") == "a b c \u2009d é"


# ------------------------------------------------------------------------------------------------ pmc-articleset

ARTICLE_SET_HEAD = (
    b'<?xml version="1.0" ?>\n<!DOCTYPE pmc-articleset PUBLIC "-//NLM//DTD ARTICLE SET 2.0//EN" '
    b'"https://dtd.nlm.nih.gov/ncbi/pmc/articleset/nlm-articleset-2.0.dtd">\n<pmc-articleset>'
)


def as_article_set(*nxml: bytes) -> bytes:
    """Wrap articles the way E-utilities `efetch db=pmc` returns them (their own prolog and DOCTYPE dropped)."""
    bodies = [re.sub(rb"^\s*(<\?xml[^>]*\?>\s*)?(<!DOCTYPE[^>]*>\s*)?", b"", xml) for xml in nxml]
    return ARTICLE_SET_HEAD + b"".join(bodies) + b"</pmc-articleset>"


def test_pmc_articleset_of_a_real_article_is_unwrapped(realdata):
    nxml = next((realdata / "pmc_packages" / "extracted" / "PMC3192425").glob("*.nxml")).read_bytes()
    other = (realdata / "nxml" / "misc" / "PMC3357053.nxml").read_bytes()
    assert parse_article(as_article_set(nxml, other)) == parse_article(nxml)  # the first article of the set
    parsed = parse_article(as_article_set(nxml))
    assert parsed.pmcid == "PMC3192425" and len(parsed.figures) == 9 and parsed.text


def test_pmc_articleset_package_extracts_like_the_bare_article(realdata, tmp_path):
    from workbench.extract.article import extract_package

    source = realdata / "pmc_packages" / "extracted" / "PMC3192425"
    wrapped = shutil.copytree(source, tmp_path / "PMC3192425")
    nxml = next(wrapped.glob("*.nxml"))
    nxml.write_bytes(as_article_set(nxml.read_bytes()))
    bare, unwrapped = extract_package(source), extract_package(wrapped)
    assert not any(error.reason == "not_jats" for error in unwrapped.errors)
    assert [pair.key for pair in unwrapped.pairs] == [pair.key for pair in bare.pairs] and len(bare.pairs) == 9
    assert [pair.sample_json for pair in unwrapped.pairs] == [pair.sample_json for pair in bare.pairs]


def test_empty_pmc_articleset_is_not_jats():
    with pytest.raises(JatsError) as empty:
        parse_article(ARTICLE_SET_HEAD + b"<error>no such id</error></pmc-articleset>")
    assert empty.value.reason == "not_jats" and "pmc-articleset" in empty.value.detail
