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
        """The catalog's read cache: DuckDB tables rebuilt from WS/catalog/*.parquet into a new file and swapped in."""
        return self.root / "catalog.duckdb"

    @property
    def state(self) -> Path:
        """Job state of the stages: SQLite (WAL) and DuckDB files each owned by one stage (docs/architecture.md)."""
        return self.root / "state"

    @property
    def downloads_db(self) -> Path:
        """Acquisition's `downloads` table (SQLite, WAL): acquire writes, extraction clears stale flags."""
        return self.state / "acquire.sqlite"

    @property
    def file_list(self) -> Path:
        """The latest `oa_file_list.csv` as Parquet (written atomically by acquire)."""
        return self.state / "file_list.parquet"

    @property
    def pubmed_db(self) -> Path:
        """Enrichment's working table (DuckDB, short transactions); readers use catalog/pubmed.parquet."""
        return self.state / "pubmed.duckdb"

    @property
    def locks(self) -> Path:
        """Lock files that let processes of one workspace take turns (`workbench.locks`)."""
        return self.state / "locks"

    @property
    def annotations_db(self) -> Path:
        """Annotation events (SQLite, WAL): many annotators append at once."""
        return self.state / "annotations.sqlite"

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
