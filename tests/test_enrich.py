"""PubMed enrichment against a local E-utilities stand-in serving real efetch responses."""

from __future__ import annotations

import random
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests
import yaml

from workbench.acquire.state import DownloadState
from workbench.cli import main as cli_main
from workbench.enrich import (
    EnrichConfig,
    EutilsError,
    RateLimiter,
    RetryPolicy,
    enrich,
    known_pmids,
    normalize_pmid,
    parse_pmid_text,
    parse_pubmed_xml,
    skip_batch,
)
from workbench.enrich.store import SCHEMA
from workbench.retry import parse_retry_after
from workbench.workspace import Workspace

REPO = Path(__file__).resolve().parent.parent
FAST_RETRY = RetryPolicy(attempts=3, backoff_base=0.01)
ARTICLE = re.compile(rb"<PubmedArticle>.*?</PubmedArticle>|<PubmedBookArticle>.*?</PubmedBookArticle>", re.S)
ARTICLE_PMID = re.compile(rb"<PMID[^>]*>(\d+)</PMID>")
SET_OPEN = b'<?xml version="1.0" ?>\n<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, 1st January 2025//EN" "https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">\n<PubmedArticleSet>\n'  # noqa: E501

# ---------------------------------------------------------------- real data and the stand-in server


@pytest.fixture(scope="session")
def real_articles(realdata: Path) -> dict[str, bytes]:
    """PMID -> one real <PubmedArticle> element, from every real efetch response."""
    files = sorted((realdata / "entrez" / "pubmed_efetch").glob("*.xml"))
    files += sorted((realdata / "entrez" / "biopython").glob("pubmed*.xml"))
    articles = {}
    for path in files:
        for article in ARTICLE.findall(path.read_bytes()):
            articles[ARTICLE_PMID.search(article).group(1).decode()] = article
    assert len(articles) == 171
    return articles


@dataclass
class EfetchServer:
    """What the stand-in saw: one (arrival time, form) per request. `failures` are answered first, in order."""

    base: str
    requests: list[tuple[float, dict[str, str]]] = field(default_factory=list)
    failures: list[int | str | None] = field(default_factory=list)  # HTTP status, "slow" (late answer), None (normal)

    def batches(self) -> list[list[str]]:
        return [form["id"].split(",") for _, form in self.requests]


@pytest.fixture
def efetch_server(real_articles: dict[str, bytes]) -> Iterator[EfetchServer]:
    state = EfetchServer(base="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            arrived = time.monotonic()
            body = self.rfile.read(int(self.headers["Content-Length"]))
            form = {key: values[0] for key, values in parse_qs(body.decode()).items()}
            state.requests.append((arrived, form))
            if self.path != "/eutils/efetch.fcgi":
                return self._answer(404, b"not found")
            failure = state.failures.pop(0) if state.failures else None
            if failure == "slow":
                time.sleep(0.5)  # longer than the client's timeout in the test that sends it
            elif failure is not None:
                return self._answer(failure, b'{"error":"API rate limit exceeded"}')
            found = [real_articles[pmid] for pmid in form["id"].split(",") if pmid in real_articles]
            self._answer(200, SET_OPEN + b"\n".join(found) + b"\n</PubmedArticleSet>\n")

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.base = f"http://127.0.0.1:{server.server_address[1]}/eutils/"
    yield state
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection beyond 127.0.0.1 (NCBI included) fails the test."""
    real_connect, real_getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def getaddrinfo(host: object, *args: object, **kwargs: object) -> list:
        if host not in ("127.0.0.1", b"127.0.0.1"):
            raise AssertionError(f"name lookup beyond 127.0.0.1: {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(sock: socket.socket, address: object) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] != "127.0.0.1":
            raise AssertionError(f"network access beyond 127.0.0.1: {address}")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    return root


def config(workspace: Path, server: EfetchServer, pmids: list[str], **overrides: object) -> EnrichConfig:
    settings = {"include_known": False, "retry": FAST_RETRY, "show_progress": False, "email": "me@example.org"}
    return EnrichConfig(workspace=workspace, pmids=tuple(pmids), eutils_base=server.base, **{**settings, **overrides})


def add_downloads(workspace: Path, rows: list[tuple[str, str | None]]) -> None:
    """Acquisition rows with just pmcid and pmid, written where acquire keeps them."""
    with DownloadState(Workspace.at(workspace)) as state:
        state.con.executemany(
            "INSERT INTO downloads (pmcid, file, pmid, status, updated_at) VALUES (?, 'x', ?, 'done', 'now')", rows
        )


def table(workspace: Path) -> dict[str, dict]:
    with duckdb.connect(str(workspace / "state" / "pubmed.duckdb"), read_only=True) as connection:
        rows = connection.execute("SELECT * FROM pubmed").to_arrow_table().to_pylist()
    return {row["pmid"]: row for row in rows}


# ---------------------------------------------------------------- parsing real responses

MESH_31588070 = [
    ("Acute Disease", "D000208", False, []),
    (
        "Anticoagulants",
        "D000925",
        False,
        [("administration & dosage", "Q000008", True), ("adverse effects", "Q000009", False)],
    ),  # noqa: E501
    ("Embolectomy", "D017128", True, [("adverse effects", "Q000009", False), ("mortality", "Q000401", False)]),
    ("Hemodynamics", "D006439", False, []),
    ("Humans", "D006801", False, []),
    (
        "Pulmonary Embolism",
        "D011655",
        False,
        [
            ("diagnostic imaging", "Q000000981", False),
            ("mortality", "Q000401", False),
            ("physiopathology", "Q000503", False),
            ("therapy", "Q000628", True),
        ],
    ),
    ("Recurrence", "D012008", False, []),
    ("Risk Factors", "D012307", False, []),
    ("Thrombolytic Therapy", "D015912", True, [("adverse effects", "Q000009", False), ("mortality", "Q000401", False)]),
    ("Treatment Outcome", "D016896", False, []),
]


def test_parse_mesh_field_by_field(realdata: Path) -> None:
    (row,) = parse_pubmed_xml((realdata / "entrez/pubmed_efetch/31588070.xml").read_bytes())
    assert row["pmid"] == "31588070"
    got = [
        (h["descriptor"], h["descriptor_ui"], h["major"], [(q["name"], q["ui"], q["major"]) for q in h["qualifiers"]])
        for h in row["mesh"]
    ]
    assert got == MESH_31588070
    assert row["mesh_terms"] == [heading[0] for heading in MESH_31588070]
    assert row["publication_types"] == ["Journal Article", "Review"]
    assert row["journal_iso"] == "Ann Thorac Cardiovasc Surg"
    assert row["title"] == "Current Management of Acute Pulmonary Embolism."
    assert (row["pmcid"], row["doi"], row["year"]) == ("PMC7184035", "10.5761/atcs.ra.19-00158", 2020)
    sections = row["abstract"].split("\n")
    assert [section.split(":")[0] for section in sections] == ["PURPOSE", "METHODS", "RESULTS", "CONCLUSIONS"]
    assert sections[0].startswith("PURPOSE: Acute pulmonary embolism (PE) remains a significant cause of morbidity")
    assert sections[-1].endswith("SPE is a safe and appropriate treatment option for appropriate patients.")
    assert row["reference_pmids"][:3] == ["30122189", "25664045", "26992603"]
    assert row["reference_pmids"][-1] == "31326193"
    assert (row["reference_count"], row["reference_pmid_count"]) == (35, 33)


def test_parse_unstructured_abstract_with_inline_markup(realdata: Path) -> None:
    (row,) = parse_pubmed_xml((realdata / "entrez/pubmed_efetch/24808625.xml").read_bytes())
    assert row["pmid"] == "24808625" and row["mesh"] == [] and row["publication_types"] == ["Journal Article"]
    assert "\n" not in row["abstract"] and row["abstract"].startswith("In protein tertiary structure prediction,")
    assert "based on multidimensional scaling and k-means clustering." in row["abstract"]  # <i>k</i> flattened
    assert row["journal_iso"] == "Int J Artif Intell Tools"
    assert row["reference_pmids"][:2] == ["11588250", "18004754"] and row["reference_count"] == 27


def test_parse_several_articles_and_no_references(realdata: Path) -> None:
    rows = parse_pubmed_xml((realdata / "entrez/biopython/pubmed2.xml").read_bytes())
    assert [row["pmid"] for row in rows] == ["11748933", "11700088"]
    assert [row["journal_iso"] for row in rows] == ["Cryobiology", "J Magn Reson"]
    assert rows[0]["reference_pmids"] == [] and rows[0]["reference_count"] == 0
    assert len(rows[0]["mesh"]) == 11 and rows[1]["mesh"] == []
    assert parse_pubmed_xml(b"<PubmedArticleSet/>") == []


def test_every_real_response_parses(realdata: Path) -> None:
    files = sorted((realdata / "entrez/pubmed_efetch").glob("*.xml"))
    rows = {path.stem: parse_pubmed_xml(path.read_bytes()) for path in files}
    assert len(files) == 164
    assert rows.pop("37909814") == []  # a real empty answer
    assert all([row["pmid"] for row in parsed] == [stem] for stem, parsed in rows.items())
    assert sum(bool(parsed[0]["mesh"]) for parsed in rows.values()) == 112
    # 98 files mention a pmc id, but 32743745 only inside its ReferenceList: that is not the article's own
    assert sum(bool(parsed[0]["pmcid"]) for parsed in rows.values()) == 97
    assert rows["32743745"][0]["pmcid"] is None


def test_mesh_and_publication_types_agree_with_pubmed_parser(realdata: Path) -> None:
    medline_parser = pytest.importorskip("pubmed_parser.medline_parser")
    from lxml import etree

    for path in sorted((realdata / "entrez/pubmed_efetch").glob("*.xml")):
        reference = [
            (medline_parser.parse_mesh_terms(a.find("MedlineCitation")), a.find("MedlineCitation/Article"))
            for a in etree.parse(str(path)).getroot().iterfind("PubmedArticle")
        ]
        for row, (mesh, article) in zip(parse_pubmed_xml(path.read_bytes()), reference, strict=True):
            expected = [term.split(":", 1)[0] for term in mesh.split("; ")] if mesh else []
            assert [heading["descriptor_ui"] for heading in row["mesh"]] == expected, path.name
            types = [node.text for node in article.iterfind("PublicationTypeList/PublicationType")]
            assert row["publication_types"] == types, path.name


@pytest.mark.parametrize("data", [b"not xml", b"<eFetchResult><ERROR>Empty result</ERROR></eFetchResult>"])
def test_parse_rejects_what_is_not_a_pubmed_article_set(data: bytes) -> None:
    with pytest.raises(ValueError, match="PubMed|PubmedArticleSet"):
        parse_pubmed_xml(data)


# ---------------------------------------------------------------- PMIDs


def test_pmid_strings_are_validated() -> None:
    assert normalize_pmid(" PMID:0012345 ") == "12345" and normalize_pmid(31588070) == "31588070"
    assert parse_pmid_text("3, 1\n2  # comment\n\n2;10") == ["1", "2", "3", "10"]
    for bad in ("abc", "12a", "-5", "0", "1.5", "12345678901"):
        with pytest.raises(ValueError, match=f"bad PMID '{re.escape(bad)}' in --pmids"):
            parse_pmid_text(f"1,{bad}", source="--pmids")


def test_known_pmids_reads_downloads_and_articles(workspace: Path) -> None:
    assert known_pmids(workspace) == []
    with duckdb.connect(str(workspace / "catalog.duckdb")) as connection:
        connection.execute("CREATE TABLE other (x INTEGER)")
    assert known_pmids(workspace) == []  # a catalog without acquisition state
    add_downloads(workspace, [("PMC1", "300"), ("PMC2", ""), ("PMC3", None), ("PMC4", "20")])
    assert known_pmids(workspace) == ["20", "300"]
    (workspace / "catalog").mkdir()
    pq.write_table(
        pa.table({"pmcid": ["PMC4", "PMC5", "PMC6"], "pmid": ["20", "1000", None]}),
        workspace / "catalog/articles.parquet",
    )
    assert known_pmids(workspace) == ["20", "300", "1000"]
    add_downloads(workspace, [("PMC7", "n/a")])
    with pytest.raises(ValueError, match="bad PMID 'n/a'.*acquire.sqlite"):
        known_pmids(workspace)


# ---------------------------------------------------------------- the run against the stand-in


def test_batches_cache_rows_and_offline_rerun(workspace: Path, efetch_server: EfetchServer, real_articles) -> None:
    real = sorted(real_articles, key=int)
    absent = [str(90_000_000 + i) for i in range(250 - len(real))]
    pmids = real + absent + ["37909814"]  # 37909814: NCBI answered it with an empty set
    summary = enrich(config(workspace, efetch_server, pmids, batch_size=200))

    batches = efetch_server.batches()
    assert [len(batch) for batch in batches] == [200, 51]
    assert sorted(sum(batches, []), key=int) == sorted(pmids, key=int)
    form = efetch_server.requests[0][1]
    assert {key: form[key] for key in ("db", "retmode", "tool", "email")} == {
        "db": "pubmed",
        "retmode": "xml",
        "tool": "biomedica-workbench",
        "email": "me@example.org",
    }
    assert "api_key" not in form
    assert (summary.requested, summary.fetched, summary.requests) == (251, 251, 2)
    assert (summary.found, summary.missing, summary.failed) == (171, 80, 0)

    rows = table(workspace)
    assert len(rows) == 251
    row = rows["31588070"]
    assert row["status"] == "found" and row["journal_iso"] == "Ann Thorac Cardiovasc Surg"
    assert [(h["descriptor"], h["major"]) for h in row["mesh"]][:3] == [
        ("Acute Disease", False),
        ("Anticoagulants", False),
        ("Embolectomy", True),
    ]
    assert row["mesh"][1]["qualifiers"][0] == {"name": "administration & dosage", "ui": "Q000008", "major": True}
    assert row["reference_pmid_count"] == 33 and row["cache_file"].startswith("cache/eutils/")
    assert rows["37909814"]["status"] == rows[absent[0]]["status"] == "missing"
    assert pq.read_table(workspace / "catalog/pubmed.parquet").num_rows == 251
    cached = sorted(path.suffix for path in (workspace / "cache/eutils/efetch-pubmed").iterdir())
    assert cached == [".json", ".json", ".xml", ".xml"]  # one response and its marker per batch, no temp files

    again = enrich(config(workspace, efetch_server, pmids))
    assert len(efetch_server.requests) == 2 and again.requests == 0  # nothing sent: all rows exist
    assert (again.already_done, again.found, again.missing) == (251, 0, 0)

    (workspace / "state" / "pubmed.duckdb").unlink()
    rebuilt = enrich(config(workspace, efetch_server, pmids, batch_size=50))
    assert len(efetch_server.requests) == 2 and rebuilt.requests == 0  # rebuilt offline from the cache
    assert (rebuilt.from_cache, rebuilt.found, rebuilt.missing) == (251, 171, 80)
    assert table(workspace) == rows


def test_new_pmids_reuse_cache_and_only_new_ones_are_fetched(workspace, efetch_server, real_articles) -> None:
    real = sorted(real_articles, key=int)
    enrich(config(workspace, efetch_server, real[:5]))
    (workspace / "state" / "pubmed.duckdb").unlink()
    summary = enrich(config(workspace, efetch_server, real[:8], reparse=True))
    assert efetch_server.batches() == [real[:5], real[5:8]]
    assert (summary.from_cache, summary.fetched, summary.found) == (5, 3, 8)


def gaps(times: list[float]) -> list[float]:
    return [later - earlier for earlier, later in zip(times, times[1:], strict=False)]


@pytest.fixture
def send_times(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """When the client starts each HTTP request (what the rate limiter controls)."""
    times: list[float] = []
    real_post = requests.Session.post

    def post(self: requests.Session, *args: object, **kwargs: object) -> requests.Response:
        times.append(time.monotonic())
        return real_post(self, *args, **kwargs)

    monkeypatch.setattr(requests.Session, "post", post)
    return times


# Arrival times at the stand-in also include its thread scheduling, which wobbles by some ms on a busy machine.
SERVER_JITTER_S = 0.03


def test_requests_are_spaced_by_the_rate_limit(workspace, efetch_server, real_articles, send_times) -> None:
    pmids = sorted(real_articles, key=int)[:4]
    enrich(config(workspace, efetch_server, pmids, batch_size=1))
    arrivals = [arrived for arrived, _ in efetch_server.requests]
    assert len(send_times) == len(arrivals) == 4
    assert min(gaps(send_times)) >= 1 / 3, gaps(send_times)
    assert min(gaps(arrivals)) >= 1 / 3 - SERVER_JITTER_S, gaps(arrivals)


def test_api_key_is_sent_and_allows_ten_per_second(workspace, efetch_server, send_times) -> None:
    enrich(config(workspace, efetch_server, ["31588070", "11748933", "219391"], batch_size=1, api_key="K123"))
    assert all(form["api_key"] == "K123" for _, form in efetch_server.requests)
    assert 0.1 <= min(gaps(send_times)) < 1 / 3, gaps(send_times)
    with pytest.raises(ValueError, match="requests_per_second"):
        EnrichConfig(workspace=workspace, requests_per_second=5)  # more than NCBI allows without a key


def test_rate_limiter_books_slots_on_a_fake_clock() -> None:
    now, sleeps = [0.0], []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(3, safety_s=0, clock=lambda: now[0], sleep=sleep)
    for _ in range(4):
        limiter.wait()
    assert sleeps == pytest.approx([1 / 3] * 3)


@pytest.mark.parametrize("failures", [[500], [429, 503]])
def test_retries_after_server_errors(workspace: Path, efetch_server: EfetchServer, failures: list[int]) -> None:
    efetch_server.failures = list(failures)
    summary = enrich(config(workspace, efetch_server, ["31588070"]))
    assert summary.requests == len(failures) + 1 and summary.found == 1
    assert table(workspace)["31588070"]["status"] == "found"


def test_retries_after_a_timeout(workspace: Path, efetch_server: EfetchServer) -> None:
    efetch_server.failures = ["slow"]
    retry = RetryPolicy(attempts=2, backoff_base=0.01)
    summary = enrich(config(workspace, efetch_server, ["31588070"], retry=retry, timeout_s=0.25))
    assert (summary.requests, summary.found) == (2, 1)


def test_missing_pmids_are_not_asked_again_unless_told(workspace: Path, efetch_server: EfetchServer) -> None:
    pmids = ["31588070", "99999999"]
    first = enrich(config(workspace, efetch_server, pmids))
    assert (first.found, first.missing, first.table_missing) == (1, 1, 1)
    (workspace / "state" / "pubmed.duckdb").unlink()
    assert enrich(config(workspace, efetch_server, pmids)).requests == 0  # the cached answer says: missing
    again = enrich(config(workspace, efetch_server, pmids, refetch_missing=True))
    assert efetch_server.batches() == [pmids, ["99999999"]]
    assert (again.already_done, again.fetched, again.missing) == (1, 1, 1)


def test_a_batch_that_keeps_failing_stops_the_run_and_keeps_earlier_rows(workspace, efetch_server) -> None:
    efetch_server.failures = [None, 503, 503, 503]  # the first batch is answered, the second never
    with pytest.raises(EutilsError, match="after 3 attempts: HTTP 503"):
        enrich(config(workspace, efetch_server, ["11748933", "31588070"], batch_size=1))
    assert list(table(workspace)) == ["11748933"]  # saved before the error propagated
    assert pq.read_table(workspace / "catalog/pubmed.parquet").column("pmid").to_pylist() == ["11748933"]
    assert len(list((workspace / "cache/eutils/efetch-pubmed").glob("*.xml"))) == 1  # failed batch not cached

    resumed = enrich(config(workspace, efetch_server, ["11748933", "31588070"], batch_size=1))
    assert (resumed.already_done, resumed.found, resumed.requests) == (1, 1, 1)
    assert set(table(workspace)) == {"11748933", "31588070"}


def test_a_batch_that_keeps_failing_can_be_skipped(workspace: Path, efetch_server: EfetchServer) -> None:
    efetch_server.failures = [503] * 3
    pmids = ["31588070", "11748933"]
    summary = enrich(config(workspace, efetch_server, pmids, batch_size=1, on_batch_error=skip_batch))
    assert (summary.failed, summary.found) == (1, 1)
    assert list(table(workspace)) == ["31588070"]  # 11748933 went first (numeric order) and was skipped
    retried = enrich(config(workspace, efetch_server, pmids))
    assert (retried.already_done, retried.found, retried.requests) == (1, 1, 1)


def test_retry_policy_backoff_honours_retry_after() -> None:
    class Ceiling(random.Random):  # full jitter draws from [0, ceiling]: take the top
        def uniform(self, a: float, b: float) -> float:
            return b

    policy, top = RetryPolicy(backoff_base=1.0), Ceiling()
    assert [policy.delay(attempt, rng=top) for attempt in (1, 2, 3)] == [1.0, 2.0, 4.0]
    assert all(0 <= policy.delay(3) <= 4.0 for _ in range(50))
    assert policy.delay(1, parse_retry_after("7")) >= 7.0 and policy.delay(1, parse_retry_after("3600")) == 60.0


def test_config_rejects_bad_batch_size(workspace: Path) -> None:
    for size in (0, 201):
        with pytest.raises(ValueError, match="batch_size"):
            EnrichConfig(workspace=workspace, batch_size=size)


def test_schema_yaml_documents_every_column() -> None:
    documented = yaml.safe_load((REPO / "data_catalog/schemas/pubmed.yaml").read_text())
    assert documented["table"] == "pubmed" and documented["key"] == "pmid"
    assert list(documented["columns"]) == SCHEMA.names


# ---------------------------------------------------------------- command line


def test_cli_enriches_known_and_listed_pmids(workspace, efetch_server, tmp_path, capsys) -> None:
    add_downloads(workspace, [("PMC7184035", "31588070"), ("PMCX", "")])
    pmid_file = tmp_path / "pmids.txt"
    pmid_file.write_text("# more\n219391\n")
    argv = ["enrich", "--workspace", str(workspace), "--eutils", efetch_server.base, "--no-progress"]
    assert cli_main([*argv, "--pmids", "11748933", "--pmid-file", str(pmid_file)]) == 0
    assert "3 requested" in capsys.readouterr().out
    assert efetch_server.batches() == [["219391", "11748933", "31588070"]]
    assert set(table(workspace)) == {"219391", "11748933", "31588070"}


def test_cli_reports_bad_input_in_one_line(workspace: Path, tmp_path: Path, capsys) -> None:
    assert cli_main(["enrich", "--workspace", str(tmp_path / "nowhere")]) == 2
    assert "workspace" in capsys.readouterr().err
    assert cli_main(["enrich", "--workspace", str(workspace), "--pmids", "123,PMC456"]) == 2
    assert "bad PMID 'PMC456' in --pmids" in capsys.readouterr().err
    assert cli_main(["enrich", "--workspace", str(workspace), "--pmid-file", str(tmp_path / "none.txt")]) == 2
    assert "none.txt does not exist" in capsys.readouterr().err
    assert cli_main(["enrich", "--workspace", str(workspace), "--no-progress"]) == 0
    assert "nothing to enrich" in capsys.readouterr().out
