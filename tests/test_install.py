"""`pip install .` (not editable) into a fresh venv gives a working CLI without the repository beside it.

Costs minutes (pip unpacks ~900 MB of base dependencies: pyarrow, polars, scipy, duckdb, ...), so it is marked
`install`: `make test` and CI run it; `pytest -m "not install"` leaves it out while iterating.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO

pytestmark = [pytest.mark.install, pytest.mark.timeout(1800)]  # the first install may download wheels

SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "workbench", "data_catalog", "notebooks")
HEAVY = ("torch", "torchvision", "open_clip", "umap", "jupyterlab", "ipywidgets", "papermill")


def _environment() -> dict[str, str]:
    """The caller's environment without anything that would put the checkout on sys.path."""
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A fresh venv holding the package built from a copy of the source files (base dependencies only)."""
    root = tmp_path_factory.mktemp("install")
    source = root / "source"
    source.mkdir()
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints")
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=skip)
        else:
            shutil.copy2(REPO / name, source / name)
    env = root / "venv"
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True, env=_environment())
    pip = [str(env / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-compile", str(source)]
    done = subprocess.run(pip, env=_environment(), capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    print(f"fresh venv + pip install . took {time.monotonic() - started:.0f} s")
    return env


def _run(venv: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / "workbench"), *args], cwd=cwd, env=_environment(), capture_output=True, text=True
    )


def test_the_wheel_carries_data_catalog_and_notebooks(venv: Path, tmp_path: Path) -> None:
    probe = "import json, workbench.resources as r; print(json.dumps([str(r.DATA_CATALOG), str(r.NOTEBOOKS)]))"
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", probe], cwd=tmp_path, env=_environment(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    data_catalog, notebooks = map(Path, json.loads(done.stdout))
    assert data_catalog.is_relative_to(venv) and notebooks.is_relative_to(venv)
    assert data_catalog.parent.name == "_bundled"
    shipped = {p.relative_to(data_catalog).as_posix() for p in data_catalog.rglob("*") if p.is_file()}
    declared = [p for p in (REPO / "data_catalog").rglob("*") if p.is_file() and p.suffix in {".yaml", ".json"}]
    assert shipped == {p.relative_to(REPO / "data_catalog").as_posix() for p in declared}
    assert {p.name for p in notebooks.glob("*.ipynb")} == {p.name for p in (REPO / "notebooks").glob("*.ipynb")}


def test_the_stages_run_from_the_installed_package(venv: Path, tmp_path: Path) -> None:
    steps = [
        ("sample-mirror", "mirror", "--articles", "4", "--seed", "3", "--no-progress"),
        ("acquire", "--workspace", "ws", "--source", "mirror", "--no-progress"),
        ("extract", "--workspace", "ws", "--workers", "0", "--no-progress"),
        ("subset", "--workspace", "ws", "--name", "all", "--where", "width > 0", "--no-progress"),
    ]
    for step in steps:
        done = _run(venv, tmp_path, *step)
        assert done.returncode == 0, f"workbench {' '.join(step)}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
    manifest = json.loads((tmp_path / "ws" / "subsets" / "all" / "manifest.json").read_text())
    assert manifest and list((tmp_path / "ws" / "subsets" / "all").glob("*.tar"))


def test_the_base_install_has_no_heavy_library_and_names_the_extra(venv: Path, tmp_path: Path) -> None:
    probe = f"import importlib.util as u; print([m for m in {HEAVY!r} if u.find_spec(m)])"
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", probe], env=_environment(), capture_output=True, text=True
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
    config = tmp_path / "run.yaml"
    config.write_text("workspace: ws\nstages: [00_sample_mirror]\n")
    done = _run(venv, tmp_path, "run", "--config", str(config))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "workbench run: error: workbench run needs 'papermill', part of the 'notebook' extra: "
        "pip install 'biomedica-workbench[notebook]'"
    )
