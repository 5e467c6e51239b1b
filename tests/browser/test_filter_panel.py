"""Acceptance: the executed 03_filter notebook in JupyterLab, all cells run, driven in headless Chromium.

Change the licence group and a year: the count, the preview and the statistics follow (the panel is alive after
Run All, whose last cell used to close the catalog). Then materialise a subset: the confirmation appears next to
the button, and the subset is on disk.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import yaml
from browser_harness import REPO, chromium_path, errors_in_outputs, screenshot
from catalog_fixture import build_workspace

from workbench.catalog import FigureFilter, open_catalog, refresh_catalog
from workbench.catalog.stats import count_by
from workbench.runner import load_run_config, run_stages

_LICENCE_TICKS = """() => {
    const plot = document.querySelector('.wb-stats .js-plotly-plot');
    return plot ? [...plot.querySelectorAll('.xtick text')].map(t => t.textContent) : null;
}"""


def _executed_notebook(tmp_path: Path) -> tuple[Path, Path]:
    """A small workspace and 03_filter executed on it by the runner (papermill); returns (workspace, run folder)."""
    built = build_workspace(tmp_path / "ws", articles=24, seed=61)
    refresh_catalog(built.workspace, progress=False)
    stage = {"license_groups": [], "subset_name": "", "search_query": "cells", "preview_size": 4}
    config = tmp_path / "run.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "workspace": str(built.workspace.root),
                "notebooks_dir": str(REPO / "notebooks"),
                "stages": [{"notebook": "03_filter", "parameters": stage}],
            }
        )
    )
    run_dir, outcomes = run_stages(load_run_config(config), run_name="browser")
    assert [o.status for o in outcomes] == ["ok"], outcomes[0].error
    return built.workspace.root, run_dir


def _count(page) -> int:
    text = page.locator(".wb-count-label").inner_text()
    return int(re.search(r"([\d,]+) figures selected", text).group(1).replace(",", ""))


def _wait_count(page, expected: int) -> None:
    _wait_text(page, ".wb-count-label", f"{expected:,} figures selected")


def _panel_state(page) -> dict[str, str]:
    names = ("count-label", "message", "preview-note", "year-readout", "subset-message")
    state = {name: page.locator(f".wb-{name}").inner_text() for name in names}
    state["search"] = page.locator(".wb-text input").input_value()
    state["tiles"] = str(page.locator(".wb-preview .widget-html").count())
    return state


def _wait_text(page, selector: str, text: str, timeout_ms: int = 15_000) -> None:
    """Wait until the element's text contains `text`; on timeout, fail with what the panel shows."""
    try:
        page.wait_for_function(
            "([s, t]) => (document.querySelector(s)?.textContent || '').includes(t)",
            arg=[selector, text],
            timeout=timeout_ms,
        )
    except Exception as error:  # playwright's TimeoutError: say what a person would see instead
        screenshot(page, "failed")
        raise AssertionError(f"{selector} never showed {text!r}; the panel shows {_panel_state(page)}") from error


def test_filter_panel_follows_changes_and_materialises(tmp_path, lab_notebook):
    workspace, run_dir = _executed_notebook(tmp_path)
    with open_catalog(workspace) as catalog:
        total = catalog.count(FigureFilter(exclude_duplicates=True))
        commercial = FigureFilter(license_groups=("commercial",), exclude_duplicates=True)
        commercial_count = catalog.count(commercial)
        years = sorted({int(y) for (y,) in catalog.execute("SELECT DISTINCT article_year FROM figures").fetchall()})
        commercial_years = [y for y, n in count_by(catalog, "article_year", commercial, top=500) for _ in range(n)]
    year_to = sorted(commercial_years)[len(commercial_years) // 2]  # a year that halves the commercial figures

    page = lab_notebook(run_dir, "03_filter.ipynb")
    screenshot(page, "01-after-run-all")
    assert not [e for e in errors_in_outputs(page) if "Error" in e], errors_in_outputs(page)
    _wait_count(page, total)
    page.wait_for_function(f"() => {{ const t = ({_LICENCE_TICKS})(); return t && t.length > 1; }}", timeout=30_000)

    # the licence group: count, preview and statistics follow
    started = time.perf_counter()
    page.locator(".wb-license-groups select").select_option(["commercial"])
    _wait_count(page, commercial_count)
    print(f"count followed the licence group in {time.perf_counter() - started:.2f} s")
    page.wait_for_function(
        f"() => JSON.stringify(({_LICENCE_TICKS})()) === JSON.stringify(['commercial'])", timeout=30_000
    )
    captions = page.locator(".wb-preview .widget-html").all_inner_texts()
    assert captions and all("commercial" in caption for caption in captions), captions
    assert page.locator(".wb-message").inner_text() == ""  # no "Connection already closed"

    # a year: the upper handle of the slider, moved with the keyboard as a person would
    handle = page.locator(".wb-years .noUi-handle-upper")
    handle.focus()
    for _ in range(years[-1] - year_to):
        handle.press("ArrowLeft")
    readout = page.locator(".wb-year-readout")
    page.wait_for_function(
        "y => document.querySelector('.wb-year-readout')?.textContent.trim().endsWith(String(y))",
        arg=year_to,
        timeout=15_000,
    )
    assert readout.inner_text().strip() == f"{years[0]} – {year_to}"  # the whole readout, not clipped
    with open_catalog(workspace, refresh=False) as catalog:
        expected = catalog.count(FigureFilter(license_groups=("commercial",), year_to=year_to, exclude_duplicates=True))
    assert 0 < expected < commercial_count, "the year must change the selection"
    _wait_count(page, expected)
    _wait_text(page, ".wb-stats", f"the {expected:,} figures", 30_000)
    screenshot(page, "02-commercial-and-year")

    # a text search: the preview is ranked and says where each figure matched; then cleared again
    page.locator(".wb-text input").fill("brain")
    _wait_text(page, ".wb-preview-note", "best first")
    first = page.locator(".wb-preview .widget-html").first.inner_text()
    assert "matched in" in first and "BM25" in first, first
    screenshot(page, "03-text-search")
    page.locator(".wb-text input").fill("")
    _wait_count(page, expected)
    _wait_text(page, ".wb-preview-note", "First")

    # materialise: the confirmation appears right under the button
    page.locator(".wb-subset-name input").fill("browser-subset")
    page.locator(".wb-subset-name input").press("Enter")
    button = page.locator("button.wb-materialise-button")
    button.click()
    message = page.locator(".wb-subset-message")
    _wait_text(page, ".wb-subset-message", "samples in", 60_000)
    assert "browser-subset" in message.inner_text()
    message.scroll_into_view_if_needed()
    screenshot(page, "04-materialised")
    assert "#b00020" not in message.inner_html(), message.inner_text()
    below = message.bounding_box()["y"] - (button.bounding_box()["y"] + button.bounding_box()["height"])
    assert 0 <= below < 80, f"the confirmation is {below:.0f} px away from the button"
    manifest = json.loads((workspace / "subsets" / "browser-subset" / "manifest.json").read_text())
    assert manifest["samples"] == expected


def test_no_chromium_means_none(monkeypatch):
    """Without chromium the `chromium` fixture skips with a message (it asks `chromium_path`)."""
    monkeypatch.setenv("PATH", "")
    monkeypatch.delenv("CHROMIUM", raising=False)
    assert chromium_path() is None
