"""Helpers used inside stage notebooks. Notebooks stay thin: parameters, calls, record results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def record_results(results_path: str | Path, results: dict[str, Any]) -> Path:
    """Write what a notebook produced as JSON (the runner sets `results_path` next to the executed notebook)."""
    path = Path(results_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(results, indent=2, sort_keys=True, default=str) + "\n")
    tmp.replace(path)
    return path
