"""Build hook: a wheel carries copies of `data_catalog/` and `notebooks/` as `workbench/_bundled/`.

The originals stay at the repository root (the design card keeps them there); `workbench.resources` prefers them in
a checkout and falls back to the bundled copies in an installed wheel. Everything else is in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SHIPPED = ("data_catalog", "notebooks")  # keep in step with workbench.resources.SHIPPED


class BuildPyWithBundledData(build_py):
    """Copy the shipped folders into the build tree after the Python modules (not for editable installs)."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):  # an editable install reads the checkout's folders directly
            return
        target = Path(self.build_lib) / "workbench" / "_bundled"
        for name in SHIPPED:
            shutil.rmtree(target / name, ignore_errors=True)
            ignore = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "*.pyc")
            shutil.copytree(ROOT / name, target / name, ignore=ignore)


setup(cmdclass={"build_py": BuildPyWithBundledData})
