"""PMC's OA web service (`oa.fcgi?id=PMC…`): where a package lives now, or why it is not available."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable

import requests

from workbench.acquire.http import get_text
from workbench.retry import PermanentError, TransientError

DEFAULT_OA_SERVICE = "https://www.ncbi.nlm.nih.gov/pmc/utils/oa/oa.fcgi"
PMC_FTP_ROOT_MARKER = "/pub/pmc/"
_REASONS = {"idIsNotOpenAccess": "not_open_access", "idDoesNotExist": "id_does_not_exist"}


class OAService:
    """Ask the OA service for the current `tgz` link of an article and map it onto the package source.

    `session` returns the requests session to use (one per worker thread).
    """

    def __init__(self, url: str, session: Callable[[], requests.Session], timeout: float) -> None:
        self.url = url
        self.session = session
        self.timeout = timeout

    def current_package(self, pmcid: str) -> str:
        """Path of the article's package relative to PMC's FTP root, e.g. `oa_package/08/e0/PMC13900.tar.gz`.

        Raises PermanentError (reason `not_open_access`, `id_does_not_exist`, `oa_service_<code>`, `no_package`)
        or TransientError (network trouble, an unreadable answer).
        """
        text = get_text(self.session(), self.url, {"id": pmcid}, self.timeout)
        return package_path_from_answer(text, pmcid)


def package_path_from_answer(text: str, pmcid: str) -> str:
    """Parse an oa.fcgi answer into the package path relative to the FTP root (see `OAService.current_package`)."""
    try:
        root = ET.fromstring(text.encode("utf-8") if isinstance(text, str) else text)
    except ET.ParseError as error:
        raise TransientError("oa_service_bad_answer", f"unreadable OA service answer for {pmcid}: {error}") from error
    problem = root.find("error")
    if problem is not None:
        code = problem.get("code", "error")
        message = (problem.text or "").strip()
        raise PermanentError(_REASONS.get(code, f"oa_service_{code}"), f"OA service: {code}: {message}")
    for record in root.iter("record"):
        for link in record.iter("link"):
            if link.get("format") == "tgz" and link.get("href"):
                return relative_to_ftp_root(link.get("href", ""), pmcid)
    raise PermanentError("no_package", f"OA service lists no tgz package for {pmcid}")


def relative_to_ftp_root(href: str, pmcid: str) -> str:
    """`ftp://ftp.ncbi.nlm.nih.gov/pub/pmc/oa_package/08/e0/PMC1.tar.gz` -> `oa_package/08/e0/PMC1.tar.gz`."""
    if PMC_FTP_ROOT_MARKER not in href:
        raise PermanentError(
            "unmappable_link", f"OA service link {href!r} for {pmcid} is not under {PMC_FTP_ROOT_MARKER}"
        )
    relative = href.split(PMC_FTP_ROOT_MARKER, 1)[1].lstrip("/")
    if not relative or ".." in relative.split("/"):
        raise PermanentError("unmappable_link", f"OA service link {href!r} for {pmcid} has no safe path")
    return relative
