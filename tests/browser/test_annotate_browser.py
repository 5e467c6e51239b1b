"""Acceptance (issue 10): the annotation widget in JupyterLab and in the Voila app (`workbench annotate serve`),
driven in headless Chromium. A cluster is labelled with the mouse (a global concept clicked in the list, then the
save button) and the next one with the keyboard (the number key of a concept, then Enter); both labels are then
in the label store and in the catalog's `annotations` view (every figure of the two clusters).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
from browser_harness import errors_in_outputs, screenshot
from explore_fixture import build_sample_workspace, write_explore_files

from workbench.annotate.serve import AppSettings, ServeConfig, start
from workbench.annotate.taxonomy import load_taxonomy
from workbench.catalog import refresh_catalog

_TILES_SHOWN = "() => document.querySelectorAll('.wb-annotate-tile img[src^=\"blob:\"]').length > 0"


def _workspace(tmp_path: Path):
    explored = write_explore_files(build_sample_workspace(tmp_path, articles=12, seed=8))
    refresh_catalog(explored.root, progress=False)  # the catalog's figures learn their cluster_id
    return explored


def _progress(page, labelled: int) -> None:
    try:
        page.wait_for_function(
            f"() => /\\b{labelled} \\/ \\d+/.test(document.querySelector('.wb-annotate-progress')?.textContent || '')",
            timeout=30_000,
        )
    except Exception as error:
        screenshot(page, f"annotate-stuck-{labelled}")
        raise AssertionError(
            f"progress did not reach {labelled}; status: {page.locator('.wb-annotate-status').inner_text()!r}"
        ) from error


def _cluster_shown(page, other_than: int | None = None) -> int:
    if other_than is not None:
        page.wait_for_function(
            "() => !(document.querySelector('.wb-annotate-title')?.textContent || '')"
            f".includes('Cluster {other_than} ')",
            timeout=30_000,
        )
    return int(re.search(r"Cluster (\d+)", page.locator(".wb-annotate-title").inner_text()).group(1))


def label_with_mouse_and_keys(page, name: str) -> list[tuple[int, str]]:
    """Label the shown cluster with the mouse, the next with keys 2 + Enter; returns (cluster, global concept)."""
    globals_ = load_taxonomy().globals
    page.wait_for_function(_TILES_SHOWN, timeout=60_000)
    _progress(page, 0)
    screenshot(page, f"{name}-01-widget")
    first = _cluster_shown(page)
    page.locator(".wb-annotate-globals select option", has_text=globals_[0]).first.click()
    page.locator(".wb-annotate-save").click()
    _progress(page, 1)
    second = _cluster_shown(page, other_than=first)
    page.locator(".wb-annotate-keypad").click()  # focus inside the widget: keys go to it, not to JupyterLab
    page.keyboard.press("2")
    page.wait_for_function(
        f"() => [...document.querySelectorAll('.wb-annotate-globals select option')].some("
        f"o => o.selected && o.textContent.replace(/\\s+/g, ' ').includes({json.dumps(globals_[1])}))",
        timeout=15_000,
    )
    page.keyboard.press("Enter")
    _progress(page, 2)
    screenshot(page, f"{name}-02-labelled")
    return [(first, globals_[0]), (second, globals_[1])]


_READ_BACK = """
import json, sys
from workbench.annotate.events import LabelStore
from workbench.catalog import open_catalog
root, clustering = sys.argv[1], sys.argv[2]
events = [[e.decision.annotator, int(e.decision.target), list(e.decision.global_concepts)]
          for e in LabelStore(root).events(clustering)]
with open_catalog(root, refresh=False) as catalog:
    rows = catalog.execute(
        "SELECT label_id, global_concepts, count(*) FROM annotations GROUP BY ALL ORDER BY label_id").fetchall()
    sizes = catalog.execute("SELECT cluster_id, count(*) FROM figures_grouped GROUP BY ALL").fetchall()
print(json.dumps({"events": events, "rows": [list(r) for r in rows], "sizes": [list(s) for s in sizes]}))
"""


def check_stored(root: Path, clustering: str, annotator: str, labelled: list[tuple[int, str]]) -> None:
    """Each cluster's event carries its concept (the keyboard one may add to a pre-filled suggestion), and the
    `annotations` view labels every figure of both clusters with it. Read by a fresh process, as another annotator
    or the command line would (this test process has had the catalog open, with DuckDB's own SQLite library on the
    label store, and then did not see the kernel's committed events: see the report of the ann-widget slice)."""
    found = subprocess.run(
        [sys.executable, "-c", _READ_BACK, str(root), clustering], capture_output=True, text=True, check=True
    )
    read = json.loads(found.stdout.strip().splitlines()[-1])
    events, rows, sizes = read["events"], read["rows"], dict(map(tuple, read["sizes"]))
    assert [(who, target) for who, target, _ in events] == [(annotator, c) for c, _ in labelled]
    assert all(concept in concepts for (_, _, concepts), (_, concept) in zip(events, labelled, strict=True))
    assert [(cluster, size) for cluster, _, size in rows] == sorted((c, sizes[c]) for c, _ in labelled)
    concepts = {cluster: concepts for cluster, concepts, _ in rows}
    assert all(concept in concepts[cluster] for cluster, concept in labelled)


def test_label_clusters_in_jupyterlab(tmp_path, lab_notebook):
    explored = _workspace(tmp_path)
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    notebook.cells = [
        nbformat.v4.new_code_cell(
            "from workbench.annotate.session import annotate_widget\nfrom workbench.catalog import open_catalog"
        ),
        nbformat.v4.new_code_cell(
            f"with open_catalog({str(explored.root)!r}, refresh=False) as catalog:  # as notebook 05 does\n"
            f"    loop = annotate_widget(catalog, 'lab-expert', {explored.clustering!r}, "
            f"embeddings={explored.embeddings!r})\nloop.view.widget"
        ),
    ]
    nbformat.write(notebook, tmp_path / "annotate.ipynb")
    started = time.perf_counter()
    page = lab_notebook(tmp_path, "annotate.ipynb")
    assert not [e for e in errors_in_outputs(page) if "Error" in e], errors_in_outputs(page)
    labelled = label_with_mouse_and_keys(page, "annotate-lab")
    print(f"JupyterLab: two clusters labelled {time.perf_counter() - started:.1f} s after opening")
    check_stored(explored.root, explored.clustering, "lab-expert", labelled)


def test_label_clusters_in_the_voila_app(tmp_path, chromium):
    explored = _workspace(tmp_path)
    said: list[str] = []
    settings = AppSettings(str(explored.root), explored.clustering, embeddings=explored.embeddings)
    process, url = start(ServeConfig(settings), said.append)
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    try:
        assert said[0] == f"annotation app: {url}" and url.startswith("http://127.0.0.1:") and "?token=" in url
        page = context.new_page()
        page.goto(url.split("?")[0])  # without the token: refused
        assert "Cluster annotation" not in page.content()
        started = time.perf_counter()
        page.goto(url, timeout=120_000)
        page.locator(".wb-annotate-name input").fill("voila-expert", timeout=120_000)  # asked once
        page.locator(".wb-annotate-start").click()
        labelled = label_with_mouse_and_keys(page, "annotate-voila")
        print(f"Voila: two clusters labelled {time.perf_counter() - started:.1f} s after opening the URL")
        check_stored(explored.root, explored.clustering, "voila-expert", labelled)
    finally:
        context.close()
        process.terminate()
        process.wait(timeout=30)
