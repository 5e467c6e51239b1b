"""Deterministic `.tar.gz` packages in PMC's current layout (`PMCnnnnnnn/<files>`), and atomic file writes."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

from workbench.fileio import write_bytes_atomically

OWNER = {"uid": 4617, "gid": 4092, "uname": "pmc", "gname": "pmcdev"}  # as in real PMC packages


def _info(name: str, mtime: int, *, size: int = 0, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime = size, mtime
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode = 0o775 if directory else 0o664
    for key, value in OWNER.items():
        setattr(info, key, value)
    return info


def tar_gz(folder: str, files: dict[str, bytes], mtime: int, level: int = 6) -> bytes:
    """A gzip'd tar of `folder/` and `folder/<name>` for each file, members sorted, fixed mtimes, gzip mtime 0:
    the same inputs always give the same bytes."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        tar.addfile(_info(folder, mtime, directory=True))
        for name in sorted(files):
            data = files[name]
            tar.addfile(_info(f"{folder}/{name}", mtime, size=len(data)), io.BytesIO(data))
    return gzip.compress(raw.getvalue(), compresslevel=level, mtime=0)


def write_atomic(path: Path, data: bytes) -> None:
    """Readers never see half a file (the sample mirror need not be durable: it can be regenerated)."""
    write_bytes_atomically(path, data, durable=False)
