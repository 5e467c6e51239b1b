"""What may be labelled: the cluster ids of a clustering and the image keys of the catalog."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from workbench.annotate.events import Decision, LabelStore
from workbench.cluster.assign import assignments_path, table_path
from workbench.errors import UserError
from workbench.workspace import Workspace


def cluster_ids(workspace: Workspace, clustering: str) -> set[int] | None:
    """The cluster ids of a clustering of this workspace (its cluster table, else its assignments); None when the
    workspace has no such clustering."""
    import pyarrow.parquet as pq

    for path in (table_path(workspace, clustering), assignments_path(workspace, clustering)):
        if path.is_file():
            column = pq.read_table(path, columns=["cluster_id"]).column("cluster_id")
            return {int(value) for value in column.unique().to_pylist() if value is not None}
    return None


def known_keys(workspace: Workspace, keys: Iterable[str]) -> set[str]:
    """Those of `keys` that are figures of the catalog (WS/catalog/figures.parquet)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    wanted = pa.array(sorted(set(keys)), pa.string())
    path = workspace.catalog_dir / "figures.parquet"
    if not len(wanted) or not path.is_file():
        return set()
    known = pq.read_table(path, columns=["key"]).column("key").combine_chunks()
    return set(pc.filter(wanted, pc.is_in(wanted, value_set=known)).to_pylist())


def check_targets(
    workspace: Workspace,
    clustering: str,
    decisions: Iterable[Decision],
    *,
    external: bool = False,
    where: str | Path = "labels",
) -> None:
    """Refuse decisions about a cluster the clustering lacks or an image the catalog lacks (UserError naming it).

    `external`: the clustering was fitted elsewhere (e.g. BIOMEDICA's own): its cluster ids are not checked.
    """
    decisions = list(decisions)
    clusters = {int(d.target) for d in decisions if d.target_kind == "cluster"}
    if clusters and not external:
        ids = cluster_ids(workspace, clustering)
        if ids is None:
            raise UserError(
                f"{where}: workspace {workspace.root} has no clustering {clustering!r}; fit one with `workbench "
                f"cluster`, or pass --external for labels of a clustering fitted elsewhere"
            )
        unknown = sorted(clusters - ids)
        if unknown:
            raise UserError(
                f"{where}: clustering {clustering!r} has no cluster {unknown[0]}"
                + (f" (nor {len(unknown) - 1} other id(s))" if len(unknown) > 1 else "")
                + f"; its ids run from {min(ids)} to {max(ids)}"
                if ids
                else f"{where}: clustering {clustering!r} has no clusters"
            )
    keys = {d.target for d in decisions if d.target_kind == "image"}
    if keys:
        missing = sorted(keys - known_keys(workspace, keys))
        if missing:
            raise UserError(
                f"{where}: {missing[0]!r} is not a figure key of {workspace.root}"
                + (f" (nor {len(missing) - 1} other key(s))" if len(missing) > 1 else "")
            )


def check_clustering(store: LabelStore, clustering: str) -> None:
    """Refuse a clustering that neither exists in the workspace nor has any recorded decision (a typo)."""
    if cluster_ids(store.workspace, clustering) is None and not store.events(clustering):
        raise UserError(
            f"no clustering {clustering!r} in {store.workspace.root} and no labels recorded for it "
            "(see WS/catalog/clusters/)"
        )
