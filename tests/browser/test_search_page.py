"""Acceptance: the search page of `workbench serve` in headless Chromium. Type a query, see thumbnails (their JPEG
bytes loaded from /figures/{key}), click one and get the figure page with its caption and PMC link. The server runs
with a token, given once in the page URL as a person would paste it."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import requests
from browser_harness import free_port, screenshot
from search_fixture import build_search_workspace

from workbench.catalog import open_catalog

TOKEN = "browser-test-token"


@pytest.fixture(scope="module")
def search_server(tmp_path_factory):
    made = build_search_workspace(tmp_path_factory.mktemp("search-page"))
    port = free_port()
    command = [sys.executable, "-m", "workbench.cli", "serve", "--workspace", str(made.root), "--port", str(port)]
    process = subprocess.Popen([*command, "--token", TOKEN], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if requests.get(f"{url}/healthz", timeout=1).ok:
                break
        except (requests.ConnectionError, requests.Timeout):  # not listening yet, or too busy to answer
            time.sleep(0.2)
    else:
        process.kill()
        pytest.fail(process.stdout.read().decode()[-3000:])
    yield made, url
    process.terminate()
    process.wait(10)


def test_query_shows_thumbnails_and_a_click_opens_the_figure_page(chromium, search_server):
    made, url = search_server
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        page.goto(f"{url}/?token={TOKEN}")
        page.fill("#q", "microscopy")
        page.select_option("#licence", "commercial")
        page.click("#go")
        page.wait_for_selector(".card img", timeout=60_000)
        page.wait_for_function(
            "() => [...document.querySelectorAll('.card img')].every(i => i.complete && i.naturalWidth > 0)",
            timeout=60_000,
        )
        cards = page.locator(".card")
        assert cards.count() > 0
        assert "results in" in page.inner_text("#status")
        keys = [cards.nth(i).get_attribute("data-key") for i in range(cards.count())]
        with open_catalog(made.root) as catalog:
            groups = dict(catalog.execute("SELECT key, license_group FROM figures").fetchall())
        assert {groups[key] for key in keys} == {"commercial"}  # the filter holds on the page too
        screenshot(page, "search_page_results")
        page.locator(".card img").first.click()
        page.wait_for_url(f"**/view/{keys[0]}", timeout=30_000)
        page.wait_for_function("() => document.querySelector('#pmc') !== null", timeout=30_000)
        page.wait_for_function("() => document.querySelector('#image').naturalWidth > 0", timeout=30_000)
        with open_catalog(made.root) as catalog:
            pmcid, caption = catalog.execute("SELECT pmcid, caption FROM figures WHERE key = ?", [keys[0]]).fetchone()
        assert page.inner_text("#caption") == caption
        assert pmcid in page.get_attribute("#pmc", "href")
        screenshot(page, "search_page_figure")
    finally:
        context.close()
