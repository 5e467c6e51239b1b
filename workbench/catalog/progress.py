"""Long DuckDB statements with a tqdm bar that follows DuckDB's own progress estimate."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import duckdb
from tqdm.auto import tqdm


def run_with_progress(
    connection: duckdb.DuckDBPyConnection,
    statement: str,
    params: Sequence[Any] | Mapping[str, Any] | None = None,
    *,
    label: str,
    progress: bool,
) -> None:
    """Run one statement; with `progress`, in a worker thread while the calling thread draws the bar."""
    if not progress:
        connection.execute(statement, params)
        return
    connection.execute("SET enable_progress_bar = true")  # needed for query_progress()
    connection.execute("SET enable_progress_bar_print = false")  # tqdm draws it instead
    failure: list[BaseException] = []

    def work() -> None:
        try:
            connection.execute(statement, params)
        except BaseException as error:  # re-raised in the calling thread
            failure.append(error)

    worker = threading.Thread(target=work, name=f"catalog-{label}", daemon=True)
    with tqdm(total=100, desc=label, unit="%", bar_format="{l_bar}{bar}| {elapsed}") as bar:
        worker.start()
        while worker.is_alive():
            worker.join(0.2)
            done = connection.query_progress()
            if done >= 0:
                bar.n = max(bar.n, min(99.0, round(done, 1)))
                bar.refresh()
        bar.n = 100
        bar.refresh()
    if failure:
        raise failure[0]
