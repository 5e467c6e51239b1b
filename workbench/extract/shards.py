"""WebDataset shards of a work unit: samples spooled on disk, then written in a stable shuffled order.

`SampleSpool` collects a work unit's samples in a scratch file and writes them through `workbench.ustar`'s
`ShardWriter` in an order given by a stable hash of the key (shuffled within the shard, reproducible).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from workbench.ustar import MemberLocation, ShardWriter


def shuffle_rank(key: str) -> bytes:
    """Stable pseudo-random sort key for a sample: samples of a shard are written in this order."""
    return hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()


@dataclass(frozen=True)
class _Spooled:
    key: str
    members: tuple[tuple[str, int, int], ...]  # (extension, spool offset, size)


class SampleSpool:
    """Collect samples in a scratch file so a whole shard can be written in shuffled order with bounded memory."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file = open(self.path, "w+b")  # noqa: SIM115 - closed by close()
        self._offset = 0
        self._samples: dict[str, _Spooled] = {}

    def __len__(self) -> int:
        return len(self._samples)

    def __contains__(self, key: str) -> bool:
        return key in self._samples

    def add(self, key: str, members: Mapping[str, bytes]) -> None:
        if key in self._samples:
            raise ValueError(f"duplicate sample key {key!r}")
        placed = []
        for ext, data in members.items():
            self._file.write(data)
            placed.append((ext, self._offset, len(data)))
            self._offset += len(data)
        self._samples[key] = _Spooled(key, tuple(placed))

    def _read(self, offset: int, size: int) -> bytes:
        return os.pread(self._file.fileno(), size, offset)

    def write_shuffled(self, writer: ShardWriter) -> Iterator[tuple[str, dict[str, MemberLocation]]]:
        """Write every spooled sample to `writer` in `shuffle_rank` order, yielding each key and its locations."""
        self._file.flush()
        for key in sorted(self._samples, key=lambda k: (shuffle_rank(k), k)):
            spooled = self._samples[key]
            members = {ext: self._read(offset, size) for ext, offset, size in spooled.members}
            yield key, writer.add_sample(key, members)

    def close(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)
