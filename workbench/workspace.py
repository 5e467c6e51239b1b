"""The on-disk layout of a workbench workspace: one folder holds a whole run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Workspace:
    """Paths inside a workspace folder. Creating the object touches nothing on disk."""

    root: Path

    @classmethod
    def at(cls, root: str | Path) -> Workspace:
        return cls(Path(root).expanduser().resolve())

    @property
    def mirror(self) -> Path:
        """Downloaded packages, laid out like PMC's FTP tree (`mirror/oa_package/xx/yy/PMC….tar.gz`)."""
        return self.root / "mirror"

    @property
    def database(self) -> Path:
        """DuckDB file with the `downloads` table and views over the Parquet catalog."""
        return self.root / "catalog.duckdb"

    @property
    def catalog_dir(self) -> Path:
        """Parquet catalog: figures.parquet, articles.parquet, errors.parquet."""
        return self.root / "catalog"

    @property
    def shards(self) -> Path:
        """WebDataset shards written by extraction."""
        return self.root / "shards"

    @property
    def subsets(self) -> Path:
        return self.root / "subsets"

    @property
    def cache(self) -> Path:
        """Raw responses of remote services (E-utilities, OA service), so re-runs are offline."""
        return self.root / "cache"

    @property
    def runs(self) -> Path:
        """Executed notebooks, one folder per `workbench run`."""
        return self.root / "runs"

    @property
    def tmp(self) -> Path:
        """Scratch space on the same filesystem, so finished files can be renamed into place atomically."""
        return self.root / "tmp"

    def ensure(self) -> Workspace:
        self.root.mkdir(parents=True, exist_ok=True)
        return self
