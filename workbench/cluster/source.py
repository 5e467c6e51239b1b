"""Embeddings as the cluster stages read them: checked against the workspace, and its catalog's columns.

Every check here runs before anything is written, so bad input (an unknown embedding set, a name that is
a path, embeddings whose keys are not this workspace's figures) exits 2 with nothing on disk.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workbench.embed.store import CARD, EmbeddingSet
from workbench.errors import InputNotFound, UserError
from workbench.fileio import CorruptFile, file_sha256
from workbench.locks import exclusive_lock
from workbench.workspace import Workspace

CLUSTERS_DIR = "clusters"  # WS/catalog/clusters/: assignments, cluster tables, current.json
MODELS_DIR = "models"  # WS/models/clusterings/NAME/, WS/models/maps/NAME/


def as_workspace(workspace: Workspace | str | Path) -> Workspace:
    return workspace if isinstance(workspace, Workspace) else Workspace.at(workspace)


@contextmanager
def writing(workspace: Workspace, what: str) -> Iterator[None]:
    """Hold WS/state/locks/clusters.lock while writing clusters or near-duplicates (busy: exit 75)."""
    with exclusive_lock(workspace.locks / "clusters.lock", f"another `workbench cluster` is writing {what}"):
        yield


def check_name(kind: str, name: str) -> str:
    """A plain folder/file name (no path, no hidden name): what `--name` and `--embeddings` take."""
    if not name or name != Path(name).name or name.startswith(".") or name in ("current",):
        raise UserError(f"{kind} {name!r} must be a plain name (letters, digits, - _), not a path")
    return name


@dataclass(frozen=True)
class Embeddings:
    """One embedding set of a workspace, validated: `keys` and float32 `vectors` in shard order."""

    name: str
    folder: Path
    card_sha256: str
    keys: list[str]
    vectors: np.ndarray

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])


def open_embeddings(workspace: Workspace, name: str) -> EmbeddingSet:
    """The embedding set NAME of `workspace`, refusing an unknown name (exit 2)."""
    check_name("embeddings", name)
    store = EmbeddingSet.of(workspace, name)
    if not (store.folder / CARD).is_file() or not store.shards():
        raise InputNotFound(
            f"no embeddings {name!r} in {workspace.root / 'embeddings'} (a card.json and at least one complete "
            f"shard); run `workbench embed --workspace {workspace.root} --name {name}` first"
        )
    try:
        store.card  # noqa: B018 - read it once so a damaged card is named here
    except CorruptFile as error:
        raise UserError(str(error)) from error
    return store


def load_embeddings(workspace: Workspace, name: str, *, check_keys: bool = True) -> Embeddings:
    """All vectors of embedding set NAME, with its keys checked against the workspace's catalog."""
    store = open_embeddings(workspace, name)
    keys, vectors = store.load()
    if len(keys) != len(vectors):
        raise UserError(f"embeddings {name!r}: {len(keys)} keys but {len(vectors)} vectors")
    if not np.isfinite(vectors).all():
        raise UserError(f"embeddings {name!r} hold NaN or infinite values")
    if check_keys:
        check_keys_in_catalog(workspace, name, keys)
    return Embeddings(name, store.folder, file_sha256(store.folder / CARD), keys, vectors)


def catalog_figures(workspace: Workspace) -> Path:
    path = workspace.catalog_dir / "figures.parquet"
    if not path.is_file():
        raise InputNotFound(f"no catalog at {path}; run `workbench extract --workspace {workspace.root}` first")
    return path


def check_keys_in_catalog(workspace: Workspace, name: str, keys: list[str]) -> None:
    """Refuse embeddings holding keys the workspace's figures do not (embeddings of another workspace)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if len(set(keys)) != len(keys):
        raise UserError(f"embeddings {name!r} hold a key more than once")
    known = pq.read_table(catalog_figures(workspace), columns=["key"]).column("key")
    present = pc.is_in(pa.array(keys, pa.string()), value_set=known.combine_chunks())
    missing = len(keys) - pc.sum(present).as_py() if keys else 0
    if missing:
        first = keys[present.to_pylist().index(False)]
        raise UserError(
            f"embeddings {name!r}: {missing} of {len(keys)} keys (e.g. {first!r}) are not figures of "
            f"{workspace.root}; embeddings of another workspace?"
        )


def catalog_columns(workspace: Workspace, keys: list[str], columns: tuple[str, ...]) -> dict[str, list]:
    """Columns of the figures Parquet for `keys`, in the order of `keys` (None where a key is absent)."""
    import duckdb
    import pyarrow as pa

    wanted = pa.table({"key": pa.array(keys, pa.string()), "position": pa.array(range(len(keys)), pa.int64())})
    connection = duckdb.connect(":memory:")
    try:
        connection.register("wanted", wanted)
        selected = ", ".join(f'figures."{column}"' for column in columns)
        table = connection.execute(
            f"SELECT {selected} FROM wanted LEFT JOIN read_parquet(?) AS figures USING (key) ORDER BY position",
            [str(catalog_figures(workspace))],
        ).to_arrow_table()
    finally:
        connection.close()
    return {column: table.column(column).to_pylist() for column in columns}
