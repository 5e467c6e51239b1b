"""Helpers used inside stage notebooks. Notebooks stay thin: parameters, calls, record results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from workbench.fileio import write_bytes_atomically


def record_results(results_path: str | Path, results: dict[str, Any]) -> Path:
    """Write what a notebook produced as JSON (the runner sets `results_path` next to the executed notebook)."""
    data = (json.dumps(results, indent=2, sort_keys=True, default=str) + "\n").encode()
    return write_bytes_atomically(results_path, data)
