"""Packaging without installing: the wheel's bundled folders, the resource resolver, optional extras stay optional."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import REPO

import workbench.resources as resources
from workbench.extras import MissingExtra, require

HEAVY = ("torch", "torchvision", "open_clip", "umap", "jupyterlab", "ipywidgets", "papermill", "nbformat")
BASE_STAGES = (
    "workbench.cli",
    "workbench.acquire",
    "workbench.enrich",
    "workbench.extract.pipeline",
    "workbench.extract.article",
    "workbench.catalog",
    "workbench.catalog.subset",
    "workbench.mirror",
    "workbench.runner",
)


def test_the_checkout_copy_wins_and_an_install_falls_back_to_the_bundled_copy(monkeypatch, tmp_path) -> None:
    assert resources.DATA_CATALOG == REPO / "data_catalog" and resources.NOTEBOOKS == REPO / "notebooks"
    monkeypatch.setattr(resources, "CHECKOUT", tmp_path)  # site-packages: no pyproject.toml beside the package
    (tmp_path / "data_catalog").mkdir()  # an unrelated top-level folder of that name is not ours
    assert resources.resource_dir("data_catalog") == resources.BUNDLED / "data_catalog"
    with pytest.raises(KeyError):
        resources.resource_dir("tests")


def test_the_cli_and_base_stages_import_no_heavy_library() -> None:
    probe = (
        "import importlib, json, sys\n"
        f"for name in {BASE_STAGES!r}: importlib.import_module(name)\n"
        "import workbench.cli as cli; cli.build_parser()\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []


def test_the_wheel_bundles_data_catalog_and_notebooks(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints")
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        shutil.copy2(REPO / name, source / name)
    for name in ("workbench", "data_catalog", "notebooks"):
        shutil.copytree(REPO / name, source / name, ignore=skip)
    command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation"]
    command += ["-w", str(tmp_path), str(source)]
    subprocess.run(command, check=True, capture_output=True, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    (wheel,) = tmp_path.glob("biomedica_workbench-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder in ("data_catalog", "notebooks"):
        expected = {p.relative_to(REPO).as_posix() for p in (REPO / folder).rglob("*") if p.is_file()}
        assert {f"workbench/_bundled/{name}" for name in expected} <= names
    assert "workbench/resources.py" in names and not any(n.startswith(("data_catalog/", "notebooks/")) for n in names)


def test_require_names_the_extra_to_install() -> None:
    wanted = r"needs 'no_such_module_x', part of the 'embed' extra: pip install 'biomedica-workbench\[embed\]'"
    with pytest.raises(MissingExtra, match=wanted):
        require("no_such_module_x", "embed", "workbench embed")
    assert require("json", "dev", "a test").dumps([]) == "[]"
