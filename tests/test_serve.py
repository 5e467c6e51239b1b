"""`workbench serve`: the HTTP contract (search JSON and multipart, figure bytes, articles, shards with Range,
subsets, health, metrics, OpenAPI), its JSON errors and limits, the token rule, and webdataset streaming."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("open_clip")

from fastapi.testclient import TestClient  # noqa: E402
from search_fixture import SearchWorkspace, build_search_workspace  # noqa: E402

from workbench.catalog import FigureFilter, SubsetSpec, materialise_subset, open_catalog  # noqa: E402
from workbench.cli import main  # noqa: E402
from workbench.errors import UserError  # noqa: E402
from workbench.search.query import SearchEngine  # noqa: E402
from workbench.serve.app import create_app  # noqa: E402
from workbench.serve.config import ServeConfig, is_loopback  # noqa: E402


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> SearchWorkspace:
    made = build_search_workspace(tmp_path_factory.mktemp("serve"))
    with open_catalog(made.root) as catalog:
        materialise_subset(catalog, SubsetSpec("com", FigureFilter(license_groups=("commercial",))))
    return made


@pytest.fixture(scope="module")
def engine(made):
    with SearchEngine.open(made.root, made.embeddings) as opened:
        yield opened


@pytest.fixture(scope="module")
def client(engine):
    with TestClient(create_app(engine, ServeConfig(max_upload_bytes=200_000))) as opened:
        yield opened


@pytest.fixture(scope="module")
def row(made) -> dict:
    with open_catalog(made.root) as catalog:
        return catalog.preview(FigureFilter(license_groups=("commercial",)), limit=3)[2]


def test_json_search_answers_the_contract(client):
    reply = client.post("/search", json={"text": "microscopy", "k": 5, "filter": {"license_groups": ["commercial"]}})
    assert reply.status_code == 200
    body = reply.json()
    assert set(body) >= {"results", "timings_ms"}
    assert 0 < len(body["results"]) <= 5
    for result in body["results"]:
        assert {"key", "score", "pmcid", "caption", "license_group", "ranks"} <= set(result)
        assert result["license_group"] == "commercial"
        assert set(result["ranks"]) <= {"images", "captions", "bm25", "articles"}
    assert body["timings_ms"]["total"] > 0


def test_image_upload_finds_that_figure_first_and_figure_bytes_are_exact(made, client, row):
    jpeg = client.get(f"/figures/{row['key']}")
    assert jpeg.status_code == 200 and jpeg.headers["content-type"] == "image/jpeg"
    with open(made.root / row["shard"], "rb") as shard:
        shard.seek(row["jpg_offset"])
        assert jpeg.content == shard.read(row["jpg_size"])
    reply = client.post("/search", files={"image": ("q.jpg", jpeg.content, "image/jpeg")}, data={"k": "3"})
    assert reply.status_code == 200
    assert reply.json()["results"][0]["key"] == row["key"]
    both = client.post(
        "/search",
        files={"image": ("q.jpg", jpeg.content, "image/jpeg")},
        data={"text": "microscopy", "k": "4", "filter": json.dumps({"license_groups": ["commercial"]})},
    )
    assert {r["license_group"] for r in both.json()["results"]} == {"commercial"}


def test_figure_metadata_and_articles(client, row):
    meta = client.get(f"/figures/{row['key']}.json").json()
    assert meta["key"] == row["key"] and meta["pmcid"] == row["pmcid"] and meta["image_url"] == f"/figures/{row['key']}"
    article = client.get(f"/articles/{row['pmcid']}").json()
    assert article["pmcid"] == row["pmcid"] and row["key"] in article["figures"]


def test_shards_and_subsets_stream_with_range(made, client):
    data = (made.root / "shards" / "000000.tar").read_bytes()
    whole = client.get("/shards/000000.tar")
    assert whole.status_code == 200 and whole.content == data and whole.headers["accept-ranges"] == "bytes"
    part = client.get("/shards/000000.tar", headers={"Range": "bytes=512-1535"})
    assert part.status_code == 206 and part.content == data[512:1536]
    assert part.headers["content-range"] == f"bytes 512-1535/{len(data)}"
    subset = client.get("/subsets/com/keys.txt")
    assert subset.status_code == 200 and subset.text == (made.root / "subsets" / "com" / "keys.txt").read_text()
    assert client.get("/subsets/com/000000.tar", headers={"Range": "bytes=0-9"}).status_code == 206


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("get", "/figures/PMC0_nope_0", {}, 404),
        ("get", "/figures/PMC0_nope_0.json", {}, 404),
        ("get", "/articles/PMC0", {}, 404),
        ("get", "/shards/absent.tar", {}, 404),
        ("get", "/shards/%2e%2e/catalog.duckdb", {}, 404),
        ("get", "/subsets/absent/keys.txt", {}, 404),
        ("post", "/search", {"json": {"text": "x", "filter": {"bogus": 1}}}, 400),
        ("post", "/search", {"json": {"text": "x", "filter": {"where": "no_such_column = 1"}}}, 400),
        ("post", "/search", {"json": {"k": 3}}, 400),
        ("post", "/search", {"json": {"text": "x", "k": "many"}}, 400),
        ("post", "/search", {"content": b"{not json", "headers": {"content-type": "application/json"}}, 400),
        ("post", "/search", {"files": {"image": ("x.jpg", b"not an image", "image/jpeg")}}, 415),
        ("post", "/search", {"files": {"image": ("x.jpg", os.urandom(300_000), "image/jpeg")}}, 413),
    ],
)
def test_bad_input_gets_a_json_error(client, method, path, kwargs, status):
    reply = getattr(client, method)(path, **kwargs)
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/json")
    assert reply.json()["status"] == status and reply.json()["error"]


def test_health_metrics_and_openapi(client):
    client.post("/search", json={"text": "microscopy", "k": 2})
    assert client.get("/healthz").json()["status"] == "ok"
    metrics = client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert 'workbench_requests_total{method="POST",route="/search",status="200"}' in metrics.text
    assert 'workbench_search_stage_ms_count{stage="bm25"}' in metrics.text
    assert 'workbench_search_stage_ms_count{stage="articles"}' in metrics.text
    assert "workbench_request_duration_ms_bucket" in metrics.text
    schema = client.get("/openapi.json").json()
    assert {"/search", "/figures/{key}", "/articles/{pmcid}", "/shards/{path}", "/healthz"} <= set(schema["paths"])
    page = client.get("/")
    assert page.status_code == 200 and "<form" in page.text


def test_token_is_required_when_given_and_off_loopback(engine):
    with pytest.raises(UserError, match="without a token"):
        ServeConfig(host="0.0.0.0")
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0")
    ServeConfig(host="0.0.0.0", token="secret")
    with TestClient(create_app(engine, ServeConfig(token="secret"))) as guarded:
        denied = guarded.post("/search", json={"text": "microscopy"})
        assert denied.status_code == 401 and denied.json()["status"] == 401
        assert guarded.get("/shards/000000.tar").status_code == 401
        ok = guarded.post("/search", json={"text": "microscopy"}, headers={"Authorization": "Bearer secret"})
        assert ok.status_code == 200
        assert guarded.get("/shards/000000.tar?token=secret").status_code == 200
        assert guarded.get("/shards/000000.tar", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert guarded.get("/healthz").status_code == 200


def test_serve_refuses_to_bind_off_loopback_without_a_token(made, capsys, monkeypatch):
    monkeypatch.delenv("WORKBENCH_TOKEN", raising=False)
    assert main(["serve", "--workspace", str(made.root), "--host", "0.0.0.0"]) == 2
    assert "without a token" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(made):
    port = _free_port()
    command = [sys.executable, "-m", "workbench.cli", "serve", "--workspace", str(made.root), "--port", str(port)]
    process = subprocess.Popen([*command, "--token", "tok"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    import requests

    for _ in range(1200):  # importing torch and loading the model may take a while on a busy machine
        if process.poll() is not None:
            break
        try:
            if requests.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except (requests.ConnectionError, requests.Timeout):  # not listening yet, or too busy to answer
            time.sleep(0.1)
    else:
        process.kill()
        pytest.fail(process.stdout.read().decode())
    yield url
    process.terminate()
    process.wait(10)


def test_running_server_needs_its_token_and_webdataset_streams_shards_from_it(made, server):
    import requests
    import webdataset as wds

    assert requests.post(f"{server}/search", json={"text": "microscopy"}, timeout=30).status_code == 401
    headers = {"Authorization": "Bearer tok"}
    assert requests.post(f"{server}/search", json={"text": "microscopy"}, headers=headers, timeout=30).ok
    urls = [f"{server}/shards/{p.name}?token=tok" for p in sorted((made.root / "shards").glob("*.tar"))]
    samples = list(wds.WebDataset(urls, shardshuffle=False).decode("pil").to_tuple("__key__", "jpg", "txt"))
    with open_catalog(made.root) as catalog:
        assert len(samples) == catalog.count()
    key, image, caption = samples[0]
    assert image.size[0] > 0 and isinstance(caption, str)
    from PIL import Image

    served = requests.get(f"{server}/figures/{key}", headers=headers, timeout=30).content
    assert Image.open(io.BytesIO(served)).size == image.size
