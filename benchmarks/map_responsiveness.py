"""Map responsiveness: time from a cell running to an interactive map, and the payload sent to the browser.

    python benchmarks/map_responsiveness.py --points 10000 100000 [--lab] [--html]

For each size, with synthetic points (captions of a typical length, 16 clusters):
- build: seconds to make the traces and the FigureWidget in the kernel (`MapView.draw`);
- payload: bytes of the widget's state as JSON (what the kernel sends over the websocket) and of the standalone HTML;
- --html: seconds for headless Chromium (Debian's) to load the standalone HTML until every point is drawn;
- --lab: seconds from the drawing cell starting in JupyterLab to the map drawn with every point (cell-to-map),
  and from a box selection in the browser to the kernel's answer (the selection line under the map).

Measured (2 shared cores, load ~7, headless Chromium with software WebGL), points / cell-to-map / selection answer /
widget payload: 10k / 8.8 s / 1.0 s / 1.1 MB; 100k / 10.4 s / 2.0 s / 0.8 MB; 1M / 12.6 s / 9.3 s / 8.0 MB (plus
5.0 MB of plotly.js per widget). Before batching the selection's restyles: 13 s and 48 s at 10k and 100k.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

WORDS = (
    "cells tumour section stained scale bar microscopy shows control treated mice figure panel".split()  # noqa: SIM905
)


def synthetic_points(count: int, clusters: int = 16, seed: int = 0):
    from workbench.explore.data import MapPoints

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, clusters, count)
    centres = rng.normal(0, 10, (clusters, 2))
    xy = (centres[labels] + rng.normal(0, 1.5, (count, 2))).astype(np.float32)
    caption = " ".join(rng.choice(WORDS, 25))  # ~170 characters, like a caption's first sentences
    facts = {
        "pmcid": np.asarray([f"PMC{1_000_000 + i // 4}" for i in range(count)], dtype=object),
        "caption": np.asarray([caption] * count, dtype=object),
        "license_group": np.asarray(rng.choice(["commercial", "noncommercial", "other"], count), dtype=object),
        "article_year": np.asarray(rng.integers(2000, 2025, count).astype(str), dtype=object),
        "article_journal": np.asarray([f"Journal {j}" for j in rng.integers(0, 40, count)], dtype=object),
        "concept": np.asarray(["unknown"] * count, dtype=object),
        "cluster": np.asarray([f"{c}: cluster {c}" for c in labels], dtype=object),
    }
    keys = np.asarray([f"PMC{1_000_000 + i // 4}_F{i % 4}_0" for i in range(count)], dtype=object)
    return MapPoints(keys, xy[:, 0], xy[:, 1], facts, count)


def kernel_side(count: int, folder: Path) -> dict:
    from plotly.graph_objects import FigureWidget

    from workbench.explore.loop import save_map_html
    from workbench.explore.widget import MapView

    points = synthetic_points(count)
    view = MapView("benchmark")
    started = time.perf_counter()
    view.draw(points, "cluster")
    build_s = time.perf_counter() - started
    state = FigureWidget(data=view.figure.data).get_state()  # what a fresh map widget sends
    html = save_map_html(points, folder / f"map-{count}.html")
    return {
        "points": count,
        "build_s": round(build_s, 2),
        "widget_traces_bytes": _state_bytes(state["_widget_data"]),  # points: binary buffers; hover text: JSON
        "widget_js_bytes": len(state["_esm"]),  # plotly.js itself, sent once per FigureWidget (anywidget's _esm)
        "html_bytes": html.stat().st_size,
    }


def _state_bytes(value: object) -> int:
    """Bytes on the wire: binary buffers (numpy arrays) as they are, everything else as JSON."""
    if isinstance(value, memoryview):
        return value.nbytes
    if isinstance(value, dict):
        return sum(len(json.dumps(key)) + 1 + _state_bytes(item) for key, item in value.items()) + 2
    if isinstance(value, list | tuple):
        return sum(_state_bytes(item) + 1 for item in value) + 2
    return len(json.dumps(value, default=str))


def html_load(count: int, folder: Path) -> float:
    from browser_harness import CHROMIUM_ARGS, chromium_path
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page()
        started = time.perf_counter()
        page.goto((folder / f"map-{count}.html").as_uri(), timeout=300_000)
        page.wait_for_function(_drawn(count), timeout=300_000, polling=100)
        seconds = time.perf_counter() - started
        browser.close()
    return round(seconds, 2)


def _drawn(count: int, selector: str = ".js-plotly-plot") -> str:
    return f"""() => {{ const p = document.querySelector('{selector}');
        return !!(p && p._fullData && p.querySelector('canvas') && p._fullLayout && p._fullLayout._plots &&
                  p._fullData.reduce((n, t) => n + (t.x ? t.x.length : 0), 0) === {count}); }}"""


NOTEBOOK_CELLS = [
    "import sys, time\nsys.path.insert(0, {benchmarks!r})\nfrom IPython.display import display\n"
    "from map_responsiveness import synthetic_points\nfrom workbench.explore.widget import MapView\n"
    "import numpy as np\npoints = synthetic_points({count})",
    "print('cell started', time.time())\nview = MapView('benchmark')\nview.draw(points, 'cluster')\n"
    "view.on_select(lambda positions: setattr(view.selection_label, 'value', f'{{len(positions)}} selected'))\n"
    "display(view.widget)",
]


def lab_cell_to_map(count: int, folder: Path) -> dict:
    import nbformat
    from browser_harness import CHROMIUM_ARGS, LabServer, chromium_path, open_notebook, run_all_cells
    from playwright.sync_api import sync_playwright

    root = folder / f"lab-{count}"
    root.mkdir()
    cells = [c.format(benchmarks=str(REPO / "benchmarks"), count=count) for c in NOTEBOOK_CELLS]
    kernel = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells], metadata=kernel)
    nbformat.write(notebook, root / "map.ipynb")
    server = LabServer(root=root, state=folder / f"lab-state-{count}").start()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True)
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            open_notebook(page, server, "map.ipynb")
            run_all_cells(page, 600)
            page.wait_for_function(_drawn(count, ".js-plotly-plot.wb-map-figure"), timeout=600_000, polling=100)
            drawn_at = time.time()
            output = page.locator(".jp-OutputArea-output").all_inner_texts()
            started_at = float(next(t for t in output if "cell started" in t).split()[-1])
            plot = page.locator(".js-plotly-plot.wb-map-figure .nsewdrag").first
            plot.scroll_into_view_if_needed()
            area = plot.bounding_box()
            page.mouse.move(area["x"] + 5, area["y"] + 5)
            page.mouse.down()
            page.mouse.move(area["x"] + area["width"] / 2, area["y"] + area["height"] / 2, steps=5)
            selected_at = time.perf_counter()
            page.mouse.up()
            page.wait_for_function(
                "() => /\\d+ selected/.test(document.querySelector('.wb-map-selection-label')?.textContent || '')",
                timeout=300_000,
                polling=50,
            )
            answer_s = time.perf_counter() - selected_at
            browser.close()
    finally:
        server.stop()
    return {"cell_to_map_s": round(drawn_at - started_at, 2), "selection_answer_s": round(answer_s, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--html", action="store_true", help="time headless Chromium loading the standalone HTML")
    parser.add_argument("--lab", action="store_true", help="time cell-to-map and a selection in JupyterLab")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        for count in args.points:
            row = kernel_side(count, folder)
            if args.html:
                row["html_load_s"] = html_load(count, folder)
            if args.lab:
                row.update(lab_cell_to_map(count, folder))
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
