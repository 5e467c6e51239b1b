"""PubMed enrichment: MeSH, publication types, abstracts and references from NCBI E-utilities."""

from workbench.enrich.eutils import DEFAULT_EUTILS_BASE, EutilsClient, EutilsError, RateLimiter
from workbench.enrich.pipeline import (
    EnrichConfig,
    EnrichSummary,
    enrich,
    raise_batch_error,
    skip_batch,
)
from workbench.enrich.pmids import known_pmids, normalize_pmid, normalize_pmids, parse_pmid_text, read_pmid_file
from workbench.enrich.pubmed import parse_pubmed_xml
from workbench.retry import RetryPolicy

__all__ = [
    "DEFAULT_EUTILS_BASE",
    "EnrichConfig",
    "EnrichSummary",
    "EutilsClient",
    "EutilsError",
    "RateLimiter",
    "RetryPolicy",
    "enrich",
    "known_pmids",
    "normalize_pmid",
    "normalize_pmids",
    "parse_pmid_text",
    "parse_pubmed_xml",
    "raise_batch_error",
    "read_pmid_file",
    "skip_batch",
]
