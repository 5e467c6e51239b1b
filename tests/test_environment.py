"""environment.yml (for conda users) mirrors pyproject.toml's dependency ranges exactly."""

from __future__ import annotations

import tomllib

import yaml
from conftest import REPO


def _normalise(spec: str) -> str:
    return spec.replace(" ", "").lower().replace("_", "-")


def test_environment_yml_mirrors_pyproject() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = {_normalise(s) for s in project["dependencies"]} | {
        _normalise(s) for s in project["optional-dependencies"]["dev"]
    }
    environment = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_entries = next(item["pip"] for item in environment["dependencies"] if isinstance(item, dict) and "pip" in item)
    listed = {_normalise(s) for s in pip_entries if not s.startswith("-e")}
    assert listed == wanted, (
        f"only in pyproject: {sorted(wanted - listed)}; only in environment.yml: {sorted(listed - wanted)}"
    )
    python = next(d for d in environment["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert python.replace("python", "").lstrip("=>") <= project["requires-python"].lstrip(">=")


def test_torch_and_webdataset_ranges() -> None:
    deps = {_normalise(s) for s in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]}
    assert "torch>=2.14" in deps and "torchvision>=0.29" in deps
    assert "webdataset>=0.2.86,<0.3" in deps  # 1.0.x silently trains on nothing in open_clip_train
    assert "duckdb==1.5.5" in deps and "duckdb-extension-fts==1.5.5" in deps
