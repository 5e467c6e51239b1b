"""Parse PubMed `efetch` XML (a `PubmedArticleSet`) into one flat row per article."""

from __future__ import annotations

import re
from typing import Any

from lxml import etree

_WHITESPACE = re.compile(r"\s+")
_YEAR = re.compile(r"\b(\d{4})\b")
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, remove_comments=True)

#: Keys of every row `parse_pubmed_xml` returns, in table order (see data_catalog/schemas/pubmed.yaml).
ROW_KEYS = (
    "pmid",
    "pmcid",
    "doi",
    "title",
    "journal",
    "journal_iso",
    "year",
    "abstract",
    "publication_types",
    "mesh",
    "mesh_terms",
    "reference_pmids",
    "reference_count",
    "reference_pmid_count",
)


def parse_pubmed_xml(data: bytes) -> list[dict[str, Any]]:
    """Rows (one per `PubmedArticle` / `PubmedBookArticle`, document order) of an efetch response.

    Raises ValueError when `data` is not XML or its root is not a `PubmedArticleSet`.
    """
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as error:
        raise ValueError(f"not a PubMed XML response: {error}") from error
    if root is None or root.tag != "PubmedArticleSet":
        tag = None if root is None else root.tag
        raise ValueError(f"expected a PubmedArticleSet, got <{tag}>: {_text(root)[:200]!r}")
    rows = []
    for element in root:
        if element.tag == "PubmedArticle":
            rows.append(_journal_article(element))
        elif element.tag == "PubmedBookArticle":
            rows.append(_book_article(element))
    return rows


def _journal_article(element: etree._Element) -> dict[str, Any]:
    citation = element.find("MedlineCitation")
    article = citation.find("Article")
    pubmed_data = element.find("PubmedData")
    ids = _article_ids(pubmed_data.find("ArticleIdList") if pubmed_data is not None else None)
    journal = article.find("Journal")
    references = _references(pubmed_data)
    return _row(
        pmid=_text(citation.find("PMID")),
        pmcid=ids.get("pmc"),
        doi=ids.get("doi") or _doi_from_elocation(article),
        title=_text(article.find("ArticleTitle")),
        journal=_text(journal.find("Title")) or None,
        journal_iso=_text(journal.find("ISOAbbreviation")) or None,
        year=_year(journal.find("JournalIssue/PubDate")),
        abstract=_abstract(article.find("Abstract")),
        publication_types=[_text(node) for node in article.iterfind("PublicationTypeList/PublicationType")],
        mesh=[_mesh_heading(node) for node in citation.iterfind("MeshHeadingList/MeshHeading")],
        references=references,
    )


def _book_article(element: etree._Element) -> dict[str, Any]:
    document = element.find("BookDocument")
    ids = _article_ids(document.find("ArticleIdList"))
    book_data = element.find("PubmedBookData")
    if book_data is not None:
        ids = {**_article_ids(book_data.find("ArticleIdList")), **ids}
    title = _text(document.find("ArticleTitle")) or _text(document.find("Book/BookTitle"))
    return _row(
        pmid=_text(document.find("PMID")),
        pmcid=ids.get("pmc"),
        doi=ids.get("doi"),
        title=title,
        journal=None,
        journal_iso=None,
        year=_year(document.find("Book/PubDate")),
        abstract=_abstract(document.find("Abstract")),
        publication_types=[_text(node) for node in document.iterfind("PublicationType")],
        mesh=[],
        references=_references(document),
    )


def _row(*, mesh: list[dict[str, Any]], references: tuple[list[str], int], **columns: Any) -> dict[str, Any]:
    reference_pmids, reference_count = references
    row = {
        **columns,
        "mesh": mesh,
        "mesh_terms": [heading["descriptor"] for heading in mesh],
        "reference_pmids": reference_pmids,
        "reference_count": reference_count,
        "reference_pmid_count": len(reference_pmids),
    }
    return {key: row[key] for key in ROW_KEYS}


def _mesh_heading(heading: etree._Element) -> dict[str, Any]:
    descriptor = heading.find("DescriptorName")
    return {
        "descriptor": _text(descriptor),
        "descriptor_ui": descriptor.get("UI", ""),
        "major": descriptor.get("MajorTopicYN") == "Y",
        "qualifiers": [
            {"name": _text(node), "ui": node.get("UI", ""), "major": node.get("MajorTopicYN") == "Y"}
            for node in heading.iterfind("QualifierName")
        ],
    }


def _abstract(abstract: etree._Element | None) -> str:
    """Abstract text; the sections of a structured abstract as `LABEL: text`, one per line."""
    if abstract is None:
        return ""
    sections = []
    for part in abstract.iterfind("AbstractText"):
        text, label = _text(part), (part.get("Label") or "").strip()
        if text or label:
            sections.append(f"{label}: {text}" if label else text)
    return "\n".join(sections)


def _references(container: etree._Element | None) -> tuple[list[str], int]:
    """PMIDs cited in `<ReferenceList>` (de-duplicated, document order) and the number of references."""
    if container is None:
        return [], 0
    pmids: dict[str, None] = {}
    count = 0
    for reference_list in container.iterfind("ReferenceList"):
        for reference in reference_list.iter("Reference"):
            count += 1
            for node in reference.iterfind("ArticleIdList/ArticleId[@IdType='pubmed']"):
                pmid = _text(node)
                if pmid.isdigit():
                    pmids[pmid] = None
    return list(pmids), count


def _article_ids(id_list: etree._Element | None) -> dict[str, str]:
    if id_list is None:
        return {}
    ids: dict[str, str] = {}
    for node in id_list.iterfind("ArticleId"):
        id_type, value = node.get("IdType", ""), _text(node)
        if value and id_type not in ids:
            ids[id_type] = value
    return ids


def _doi_from_elocation(article: etree._Element) -> str | None:
    for node in article.iterfind("ELocationID[@EIdType='doi']"):
        if _text(node):
            return _text(node)
    return None


def _year(pub_date: etree._Element | None) -> int | None:
    if pub_date is None:
        return None
    match = _YEAR.search(_text(pub_date.find("Year")) or _text(pub_date.find("MedlineDate")))
    return int(match.group(1)) if match else None


def _text(node: etree._Element | None) -> str:
    """Text of an element with inline markup flattened and whitespace normalised."""
    if node is None:
        return ""
    return _WHITESPACE.sub(" ", "".join(node.itertext())).strip()
