"""Browser-test fixtures: `chromium` (a headless browser), `lab_server` (JupyterLab on 127.0.0.1 with a token)
and `lab_notebook` (a page with a notebook opened and all its cells run). Skips when Chromium is missing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from browser_harness import CHROMIUM_ARGS, LabServer, chromium_path, open_notebook, run_all_cells


@pytest.fixture(scope="package")  # not session: Playwright keeps an asyncio loop running while open
def chromium() -> Iterator[object]:
    """Debian's chromium driven by Playwright (never `playwright install`).

    Per module, not per session: while Playwright's sync API lives, its event loop counts as running in the main
    thread, so code that schedules work on the running loop (the filter panel's statistics) would wait forever
    in the tests that follow (tests/test_widgets.py after tests/browser/).
    """
    executable = chromium_path()
    if executable is None:
        pytest.skip("chromium not found: `apt-get install -y chromium` (Debian) to run the browser tests")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed: pip install -e '.[dev]'")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def lab_server(tmp_path: Path) -> Callable[[Path], LabServer]:
    """`lab_server(root)` starts JupyterLab serving `root`; stopped (with its kernels) after the test."""
    started: list[LabServer] = []

    def start(root: Path) -> LabServer:
        server = LabServer(root=root, state=tmp_path / f"lab-state-{len(started)}")
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def lab_notebook(chromium, lab_server) -> Callable[..., object]:
    """`lab_notebook(root, "nb.ipynb")`: a Playwright page with the notebook open and all its cells run."""
    pages = []

    def open_and_run(root: Path, relative: str, *, run_timeout_s: float = 180.0):
        server = lab_server(root)
        context = chromium.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        pages.append(context)
        open_notebook(page, server, relative)
        run_all_cells(page, run_timeout_s)
        return page

    yield open_and_run
    for context in pages:
        context.close()
