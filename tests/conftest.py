"""Shared fixtures. Tests never reach the internet: hubs are forced offline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent
REALDATA = Path(os.environ.get("WORKBENCH_REALDATA", REPO.parent / "shared" / "realdata"))


@pytest.fixture(scope="session")
def realdata() -> Path:
    """`../shared/realdata` (real PMC packages, nxml, file list, Entrez responses); skip when absent."""
    if not REALDATA.is_dir():
        pytest.skip(f"real data not found at {REALDATA} (set WORKBENCH_REALDATA to its folder)")
    return REALDATA
