"""DuckDB extensions shipped as PyPI wheels (`duckdb-extension-NAME`), loaded by file path: nothing is downloaded.

`fts` (full-text search) and `sqlite` (reading the WAL-mode state files under WS/state/). DuckDB derives an
extension's entry point from its file name, and the sqlite extension's is `sqlite_scanner`, so its file is
linked under that name in a private folder first.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from functools import cache
from pathlib import Path

import duckdb

_ENTRY_NAMES = {"sqlite": "sqlite_scanner"}


@cache
def extension_path(name: str) -> Path:
    """The extension file shipped in `duckdb_extension_<name>` for this DuckDB version (named for its entry)."""
    package = f"duckdb_extension_{name}"
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the {name} extension is not installed: pip install duckdb-extension-{name}=={duckdb.__version__}"
        )
    root = Path(next(iter(spec.submodule_search_locations)))
    path = root / "extensions" / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    if not path.is_file():
        found = sorted(root.glob(f"extensions/*/{name}.duckdb_extension"))
        raise FileNotFoundError(
            f"no {name} extension for DuckDB {duckdb.__version__} in {root} (found: "
            f"{', '.join(str(p.parent.name) for p in found) or 'none'}); install "
            f"duckdb-extension-{name}=={duckdb.__version__}"
        )
    entry = _ENTRY_NAMES.get(name)
    if entry is None:
        return path
    folder = Path(tempfile.gettempdir()) / f"workbench-duckdb-extensions-{os.getuid()}" / f"v{duckdb.__version__}"
    folder.mkdir(parents=True, exist_ok=True)
    linked = folder / f"{entry}.duckdb_extension"
    if not (linked.is_symlink() and linked.resolve() == path.resolve()):
        temporary = folder / f".{entry}.{os.getpid()}"
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(path)
        os.replace(temporary, linked)
    return linked


def load_extension(connection: duckdb.DuckDBPyConnection, name: str) -> None:
    """LOAD an extension by file path (before the connection's file access is switched off)."""
    quoted = str(extension_path(name)).replace("'", "''")
    connection.execute(f"LOAD '{quoted}'")  # LOAD takes no parameters; a fixed installed path
