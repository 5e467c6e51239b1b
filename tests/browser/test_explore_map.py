"""Acceptance: the executed 04_explore notebook in JupyterLab, all cells run, driven in headless Chromium.

The map renders (plotly's WebGL canvas, every point drawn); hovering a point shows its figure; a box selection
dragged with the mouse reaches the kernel, and the filter panel's count follows it: it equals the number of points
plotly reports selected in the browser.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import yaml
from browser_harness import REPO, errors_in_outputs, screenshot
from explore_fixture import build_sample_workspace, write_explore_files

from workbench.runner import load_run_config, run_stages

_MAP = ".js-plotly-plot.wb-map-figure"  # the plot div carries the widget's class itself
_POINTS = f"""() => {{
    const plot = document.querySelector('{_MAP}');
    if (!plot || !plot._fullData || !plot.querySelector('canvas')) return null;
    return plot._fullData.reduce((n, trace) => n + trace.x.length, 0);
}}"""
_LISTEN = f"""() => {{
    const plot = document.querySelector('{_MAP}');
    window.__selected = null;
    plot.on('plotly_selected', event => {{ window.__selected = event ? event.points.length : 0; }});
}}"""
_FIRST_POINT = f"""() => {{
    const plot = document.querySelector('{_MAP}');
    const layout = plot._fullLayout, trace = plot._fullData[0], box = plot.getBoundingClientRect();
    return [box.left + layout.xaxis._offset + layout.xaxis.d2p(trace.x[0]),
            box.top + layout.yaxis._offset + layout.yaxis.d2p(trace.y[0])];
}}"""


def _executed_notebook(tmp_path: Path) -> tuple[Path, Path, int]:
    """A sample workspace with map, clusters and embeddings, and 04_explore executed on it by the runner."""
    explored = write_explore_files(build_sample_workspace(tmp_path, articles=12, seed=8))
    stage = {
        "model": "",  # the fixture wrote embeddings, clusters and map already
        "embeddings": explored.embeddings,
        "map_name": explored.map_name,
        "gallery_clusters": 2,
        "gallery_size": 4,
    }
    config = tmp_path / "run.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "workspace": str(explored.root),
                "notebooks_dir": str(REPO / "notebooks"),
                "stages": [{"notebook": "04_explore", "parameters": stage}],
            }
        )
    )
    run_dir, outcomes = run_stages(load_run_config(config), run_name="browser")
    assert [o.status for o in outcomes] == ["ok"], outcomes[0].error
    return explored.root, run_dir, len(explored.keys)


def _count(page) -> int:
    text = page.locator(".wb-count-label").inner_text()
    return int(re.search(r"([\d,]+) figures selected", text).group(1).replace(",", ""))


def test_map_renders_and_a_box_selection_drives_the_panel(tmp_path, lab_notebook):
    _, run_dir, points = _executed_notebook(tmp_path)
    started = time.perf_counter()
    page = lab_notebook(run_dir, "04_explore.ipynb")
    assert not [e for e in errors_in_outputs(page) if "Error" in e], errors_in_outputs(page)
    page.wait_for_function(f"() => ({_POINTS})() === {points}", timeout=120_000)  # slow on a loaded machine
    print(f"map interactive {time.perf_counter() - started:.1f} s after opening JupyterLab and running all cells")
    assert page.locator(f"{_MAP} canvas").count() >= 1  # Scattergl draws with WebGL
    page.wait_for_function(f"() => document.querySelector('.wb-count-label')?.textContent.includes('{points}')")
    screenshot(page, "explore-01-map")

    page.locator(_MAP).scroll_into_view_if_needed()
    # hover the first point: its figure (thumbnail and PMCID) appears in the card beside the map
    x, y = page.evaluate(_FIRST_POINT)
    page.mouse.move(x, y)
    page.wait_for_function("() => /PMC\\d+/.test(document.querySelector('.wb-map-card')?.textContent || '')")
    assert page.locator(".wb-map-card img").get_attribute("src").startswith("blob:")

    # a box selection over the left half of the plot, dragged as a person would
    page.evaluate(_LISTEN)
    area = page.locator(f"{_MAP} .nsewdrag").first.bounding_box()
    page.mouse.move(area["x"] + area["width"] * 0.02, area["y"] + area["height"] * 0.02)
    page.mouse.down()
    for step in range(1, 11):
        page.mouse.move(
            area["x"] + area["width"] * (0.02 + 0.05 * step), area["y"] + area["height"] * (0.02 + 0.097 * step)
        )
    page.mouse.up()
    page.wait_for_function("() => window.__selected !== null", timeout=10_000)
    selected = page.evaluate("() => window.__selected")
    assert 0 < selected < points, f"the box selected {selected} of {points} points"
    page.wait_for_function(
        f"() => /\\b{selected} figures selected/.test(document.querySelector('.wb-count-label')?.textContent || '')",
        timeout=15_000,
    )
    assert f"{selected} points selected" in page.locator(".wb-map-selection-label").inner_text()
    screenshot(page, "explore-02-selected")
    assert _count(page) == selected
