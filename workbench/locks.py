"""Advisory file locks between processes of one workspace (they die with their process, even on kill -9)."""

from __future__ import annotations

import fcntl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from workbench.errors import ResourceBusy


@contextmanager
def exclusive_lock(path: str | Path, what: str, *, wait_s: float | None = 0.0, poll_s: float = 0.05) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created when missing) for the block.

    `wait_s=0` fails at once when another process holds it, `None` waits as long as it takes; otherwise
    waits up to `wait_s` seconds. Failure raises `ResourceBusy` naming `what` (e.g. "another `workbench
    extract` is running on WS").
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        deadline = None if wait_s is None else time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait_s is None else fcntl.LOCK_NB))
                break
            except BlockingIOError as error:
                if deadline is not None and time.monotonic() >= deadline:
                    raise ResourceBusy(what) from error
                time.sleep(poll_s)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
