"""Files served as they are (shards, subsets) and figure bytes read through their recorded shard offsets."""

from __future__ import annotations

from pathlib import Path

from workbench.errors import InputNotFound
from workbench.ustar import MemberLocation, read_member
from workbench.workspace import Workspace

SERVED_SUFFIXES = (".tar", ".json", ".parquet", ".txt")


def served_file(folder: Path, relative: str) -> Path:
    """`folder/relative` when it is a regular file inside `folder` (no `..`, no links out); else InputNotFound."""
    base = folder.resolve()
    candidate = (base / relative).resolve()
    if not candidate.is_relative_to(base) or not candidate.is_file() or not candidate.name.endswith(SERVED_SUFFIXES):
        raise InputNotFound(f"no file {relative!r}")
    return candidate


def subset_file(workspace: Workspace, name: str, relative: str) -> Path:
    if "/" in name or name.startswith(".") or not (workspace.subsets / name).is_dir():
        raise InputNotFound(f"no subset {name!r}")
    return served_file(workspace.subsets / name, relative)


def figure_bytes(workspace: Workspace, shard: str, offset: int, size: int) -> bytes:
    """The JPEG member exactly as stored in its shard."""
    return read_member(served_file(workspace.root, shard), MemberLocation(int(offset), int(size)))
