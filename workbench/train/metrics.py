"""metrics.jsonl of a training run, read from open_clip_train's own log (out.log) while it trains.

open_clip_train logs a "Train Epoch: E [N/M (P%)] ... S/s ... LR: x Logit Scale: y ... Loss: l (avg)" line every
`--log-every-n-steps` steps and writes validation results to checkpoints/results.jsonl; a follower thread turns the
former into `{"kind": "train", ...}` records (and drives the progress bar), the latter into `{"kind": "val", ...}`.
On resume, records of epochs at or after the resumed checkpoint are dropped first (those steps run again).
"""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path
from typing import Any

from workbench.fileio import write_bytes_atomically

_TRAIN = re.compile(
    r"Train Epoch: (?P<epoch>\d+) \[\s*(?P<samples>\d+)/(?P<per_epoch>\d+) \((?P<percent>\d+)%\)\].*?"
    r"Batch \(t\): (?P<batch_t>[\d.]+), (?P<rate>[\d.e+-]+)/s.*?LR: (?P<lr>[\d.e+-]+) "
    r"Logit Scale: (?P<scale>[\d.e+-]+)(?P<losses>.*)$"
)
_LOSS = re.compile(r"(?P<name>[A-Za-z_]+): (?P<value>[\d.e+-]+) \((?P<avg>[\d.e+-]+)\)")


def parse_train_line(line: str) -> dict[str, Any] | None:
    """One open_clip_train progress line as a metrics record (None for other lines)."""
    match = _TRAIN.search(line)
    if not match:
        return None
    record: dict[str, Any] = {
        "kind": "train",
        "epoch": int(match["epoch"]),
        "samples": int(match["samples"]),
        "samples_per_epoch": int(match["per_epoch"]),
        "samples_per_second": float(match["rate"]),
        "batch_seconds": float(match["batch_t"]),
        "lr": float(match["lr"]),
        "logit_scale": float(match["scale"]),
    }
    for loss in _LOSS.finditer(match["losses"]):
        name = loss["name"].lower()
        record[name] = float(loss["value"])
        record[f"{name}_avg"] = float(loss["avg"])
    return record


def read_metrics(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut by a kill
    return records


def keep_before(path: Path, epoch: int) -> None:
    """Keep only records of epochs before `epoch` (the steps after the resumed checkpoint run again)."""
    records = [r for r in read_metrics(path) if r.get("kind") == "val" or int(r.get("epoch", 0)) < epoch]
    records = [r for r in records if r.get("kind") != "val" or int(r.get("epoch", 0)) <= epoch]
    write_bytes_atomically(path, "".join(json.dumps(r) + "\n" for r in records).encode())


class LogFollower(threading.Thread):
    """Tail out.log from where it ends now; append train records to metrics.jsonl and report progress."""

    def __init__(self, log: Path, metrics: Path, on_record: Any = None, poll_s: float = 0.5) -> None:
        super().__init__(name="train-log-follower", daemon=True)
        self.log, self.metrics, self.on_record, self.poll_s = log, metrics, on_record, poll_s
        self.offset = log.stat().st_size if log.is_file() else 0
        self._halt = threading.Event()
        self._buffer = ""

    def run(self) -> None:
        while not self._halt.is_set():
            self.drain()
            self._halt.wait(self.poll_s)
        self.drain()

    def drain(self) -> None:
        if not self.log.is_file():
            return
        with open(self.log, encoding="utf-8", errors="replace") as handle:
            handle.seek(self.offset)
            chunk = handle.read()
            self.offset = handle.tell()
        lines = (self._buffer + chunk).split("\n")
        self._buffer = lines.pop()
        records = [r for r in map(parse_train_line, lines) if r is not None]
        if not records:
            return
        with open(self.metrics, "a", encoding="utf-8") as out:
            for record in records:
                out.write(json.dumps(record | {"time": time.time()}) + "\n")
        for record in records:
            if self.on_record is not None:
                self.on_record(record)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def add_val_results(results: Path, metrics: Path, seen: int) -> int:
    """Append open_clip_train's validation results (lines after the first `seen`) as val records; lines now."""
    if not results.is_file():
        return seen
    lines = results.read_text().splitlines()
    with open(metrics, "a", encoding="utf-8") as out:
        for line in lines[seen:]:
            try:
                values = json.loads(line)
            except json.JSONDecodeError:
                continue
            out.write(json.dumps({"kind": "val", **values}) + "\n")
    return len(lines)
