"""environment.yml (for conda users) mirrors pyproject.toml's dependency ranges exactly, extras included."""

from __future__ import annotations

import tomllib

import yaml
from conftest import REPO

PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
HEAVY = ("torch", "torchvision", "open-clip-torch", "umap-learn", "jupyterlab")


def _normalise(spec: str) -> str:
    return spec.replace(" ", "").lower().replace("_", "-")


def _extras() -> dict[str, set[str]]:
    """Each extra's requirements, without the self-references of `all`."""
    return {
        name: {_normalise(s) for s in specs if not s.startswith(PROJECT["name"])}
        for name, specs in PROJECT["optional-dependencies"].items()
    }


def _name(spec: str) -> str:
    return spec.split("[")[0].split(">")[0].split("=")[0].split("<")[0]


def test_environment_yml_mirrors_pyproject() -> None:
    wanted = {_normalise(s) for s in PROJECT["dependencies"]}.union(*_extras().values())
    environment = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_entries = next(item["pip"] for item in environment["dependencies"] if isinstance(item, dict) and "pip" in item)
    listed = {_normalise(s) for s in pip_entries if not s.startswith("-e")}
    assert listed == wanted, (
        f"only in pyproject: {sorted(wanted - listed)}; only in environment.yml: {sorted(listed - wanted)}"
    )
    python = next(d for d in environment["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert python.replace("python", "").lstrip("=>") <= PROJECT["requires-python"].lstrip(">=")


def test_heavy_libraries_are_extras_and_all_names_every_extra() -> None:
    base = {_name(_normalise(s)) for s in PROJECT["dependencies"]}
    assert not base & set(HEAVY), f"heavy libraries in the base install: {sorted(base & set(HEAVY))}"
    extras = _extras()
    assert set(HEAVY) <= {_name(s) for specs in extras.values() for s in specs}
    everything = set(PROJECT["optional-dependencies"]) - {"all", "dev"}
    (all_spec,) = PROJECT["optional-dependencies"]["all"]
    assert set(all_spec.split("[")[1].rstrip("]").split(",")) == everything
    makefile = (REPO / "Makefile").read_text()
    assert "'.[all,dev]'" in makefile  # make demo / make test install every extra


def test_torch_and_webdataset_ranges() -> None:
    deps = {_normalise(s) for s in PROJECT["dependencies"]}.union(*_extras().values())
    assert "torch>=2.14" in deps and "torchvision>=0.29" in deps
    assert "webdataset>=0.2.86,<0.3" in deps  # 1.0.x silently trains on nothing in open_clip_train
    assert "duckdb==1.5.5" in deps and "duckdb-extension-fts==1.5.5" in deps
