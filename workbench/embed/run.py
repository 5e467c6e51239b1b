"""`workbench embed`: embed the catalog's (or a subset's) images and captions into WS/embeddings/NAME/.

One output per source shard, its marker written last (`workbench.embed.store`): a shard with a marker is skipped,
so a killed run resumes where it stopped and a run after an incremental extract embeds only the new shards.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from workbench.embed.encode import encode_shards
from workbench.embed.reading import Sample, ShardWork, default_workers
from workbench.embed.spec import ModelSpec, parse_model_spec
from workbench.embed.store import CARD, EmbeddingSet, shard_done, write_card
from workbench.errors import InputNotFound, UserError
from workbench.fileio import file_sha256, read_json
from workbench.locks import exclusive_lock
from workbench.workspace import Workspace

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
COLUMNS = ("key", "shard", "jpg_offset", "jpg_size", "txt_offset", "txt_size")
CARD_FORMAT = 1
LOCK_WAIT_S = 5.0  # a run that just ended (or was killed) may take a moment to let go


@dataclass(frozen=True)
class EmbedConfig:
    workspace: Path
    model: str  # the model spec text
    name: str | None = None  # default: derived from the spec
    subset: str | None = None
    device: str = "cpu"
    batch_size: int = 64
    num_workers: int | None = None  # DataLoader workers (default min(2, cpus))
    threads: int | None = None  # torch threads of the model on cpu (default: the cores the workers leave, >= 1)
    force: bool = False
    progress: bool = True
    workers: int | None = None  # Dask worker processes on this machine, each embedding whole shards (None: no Dask)
    scheduler: str | None = None  # address of a running Dask scheduler


@dataclass(frozen=True)
class EmbedReport:
    name: str
    folder: Path
    shards_done: int
    shards_skipped: int
    rows: int
    seconds: float

    def describe(self) -> str:
        if not self.shards_done:
            return f"embeddings {self.name}: nothing to do ({self.shards_skipped} shards already embedded)"
        rate = self.rows / self.seconds if self.seconds else 0.0
        return (
            f"embeddings {self.name}: {self.rows} images in {self.shards_done} shards in {self.seconds:.1f} s "
            f"({rate:.1f} images/s); {self.shards_skipped} shards already embedded; folder {self.folder}"
        )


def default_name(spec: ModelSpec) -> str:
    if spec.family == "builtin":
        return "builtin"
    if spec.run:
        return f"run-{spec.run}"[:100]
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{spec.family}-{Path(spec.name).name}").strip("-.")
    return name[:100] or spec.family


def embedding_name(workspace: Workspace, name: str) -> str:
    """A plain set name; a path is accepted only when it is a set of this workspace."""
    if "/" in name or name.startswith("."):
        path = Path(name).expanduser().resolve()
        if path.parent != workspace.root / "embeddings":
            raise UserError(f"embeddings {name} are not in this workspace ({workspace.root / 'embeddings'})")
        name = path.name
    if not NAME_PATTERN.match(name):
        raise UserError(f"bad embedding name {name!r}: letters, digits, '.', '_' and '-' only")
    return name


def _subset_samples(workspace: Workspace, subset: str) -> list[Sample]:
    parts = subset.split("/")  # NAME, or NAME/SPLIT of a split subset
    if len(parts) > 2 or not all(NAME_PATTERN.match(part) and ".." not in part for part in parts):
        raise UserError(f"bad subset name {subset!r}")
    folder = workspace.subsets.joinpath(*parts)
    rows_path = folder / "figures.parquet"
    if not rows_path.is_file():
        raise InputNotFound(f"subset {subset} not found: {rows_path} is missing (run `workbench subset` first)")
    table = pq.read_table(rows_path, columns=list(COLUMNS)).sort_by("key").to_pylist()
    return [_sample(row, folder if (folder / row["shard"]).exists() else workspace.root) for row in table]


def _catalog_samples(workspace: Workspace, progress: bool) -> list[Sample]:
    from workbench.catalog import open_catalog

    if not (workspace.catalog_dir / "figures.parquet").exists():
        raise InputNotFound(f"no catalog in {workspace.root}: run `workbench extract` first")
    with open_catalog(workspace, search_index=False, progress=progress) as catalog:
        reader = catalog.selected_rows(None)
        rows = [row for batch in reader for row in batch.select(list(COLUMNS)).to_pylist()]
    return [_sample(row, workspace.root) for row in rows]


def _sample(row: dict[str, Any], root: Path) -> Sample:
    shard = Path(row["shard"])
    return Sample(
        row["key"],
        str(shard if shard.is_absolute() else root / shard),
        int(row["jpg_offset"]),
        int(row["jpg_size"]),
        int(row["txt_offset"] or 0),
        int(row["txt_size"] or 0),
    )


def plan_shards(samples: list[Sample]) -> list[ShardWork]:
    """Group samples by source shard (the output is named by the shard file's stem), keys in order."""
    groups: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        groups[Path(sample.shard).name.removesuffix(".tar")].append(sample)
    return [ShardWork(name, tuple(sorted(group, key=lambda s: s.key))) for name, group in sorted(groups.items())]


def _complete(folder: Path, work: ShardWork) -> bool:
    """Done when the marker exists and its keys cover the shard's current keys (a rewritten shard is redone)."""
    if not shard_done(folder, work.name):
        return False
    try:
        read_json(folder / f"{work.name}.done.json")
        have = set((folder / f"{work.name}.keys.txt").read_text().splitlines())
    except (OSError, ValueError):
        return False
    return all(sample.key in have for sample in work.samples)


def _check_existing(folder: Path, spec: ModelSpec, subset: str | None, workspace: Workspace, force: bool) -> None:
    card_path = folder / CARD
    if not card_path.exists():
        return
    card = read_json(card_path)
    if card.get("workspace") not in (None, str(workspace.root)) and not force:
        raise UserError(
            f"embeddings {folder.name} were made in another workspace ({card.get('workspace')}): "
            "embed them here under another --name, or pass --force to replace them"
        )
    same = card.get("spec") == spec.text and card.get("subset") == subset
    if same and spec.weights_path and card.get("checkpoint_sha256") != file_sha256(spec.weights_path):
        same = False
    if same:
        return
    if not force:
        raise UserError(
            f"embeddings {folder.name} were made with {card.get('spec')!r} (subset {card.get('subset')}); "
            f"this run asks for {spec.text!r} (subset {subset}): choose another --name or pass --force to replace them"
        )
    shutil.rmtree(folder)


def run_embedding(config: EmbedConfig) -> EmbedReport:
    """Embed what is not embedded yet; raise UserError before writing anything when the input is bad."""
    from workbench.embed.models import load_embedder

    if not Path(config.workspace).is_dir():
        raise InputNotFound(f"workspace {config.workspace} does not exist")
    workspace = Workspace.at(config.workspace)
    spec = parse_model_spec(config.model, workspace.root)
    name = embedding_name(workspace, config.name or default_name(spec))
    if config.device not in ("cpu", "cuda"):
        raise UserError(f"--device must be cpu or cuda, not {config.device!r}")
    samples = (
        _subset_samples(workspace, config.subset) if config.subset else _catalog_samples(workspace, config.progress)
    )
    folder = EmbeddingSet.of(workspace, name).folder
    lock = workspace.locks / f"embed-{name}.lock"
    busy = f"another `workbench embed` is writing embeddings {name} of {workspace.root}"
    with exclusive_lock(lock, busy, wait_s=LOCK_WAIT_S):
        _check_existing(folder, spec, config.subset, workspace, config.force)
        work = plan_shards(samples)
        pending = [shard for shard in work if not _complete(folder, shard)]
        if not pending:
            return EmbedReport(name, folder, 0, len(work), 0, 0.0)
        embedder = load_embedder(spec, config.device)  # a checkpoint that does not fit fails here, nothing written
        card = _card(embedder, spec, config, workspace)
        folder.mkdir(parents=True, exist_ok=True)
        write_card(folder, card | _counts(folder, work))
        _set_threads(config)
        started = time.perf_counter()
        if config.workers is not None or config.scheduler is not None:
            from workbench.embed.distributed import ShardJob, run_on_dask

            jobs = [ShardJob(spec.text, config.device, config.batch_size, str(folder), work) for work in pending]
            rows = run_on_dask(jobs, config.workers, config.scheduler, config.progress)
        else:
            rows = encode_shards(
                embedder,
                pending,
                folder,
                config.batch_size,
                _workers(config),
                config.device,
                config.progress,
                workspace.locks,
            )
        seconds = time.perf_counter() - started
        card["last_run"] = {"shards": len(pending), "rows": rows, "seconds": round(seconds, 3)}
        write_card(folder, card | _counts(folder, work))
    return EmbedReport(name, folder, len(pending), len(work) - len(pending), rows, seconds)


def _card(embedder: Any, spec: ModelSpec, config: EmbedConfig, workspace: Workspace) -> dict[str, Any]:
    card = {"format": CARD_FORMAT, **embedder.card(), "subset": config.subset, "workspace": str(workspace.root)}
    card |= {"device": config.device, "batch_size": config.batch_size, "num_workers": _workers(config)}
    card["dask"] = {"workers": config.workers, "scheduler": config.scheduler}
    card["threads"] = config.threads or max(1, (os.cpu_count() or 1) - _workers(config))
    return card


def _workers(config: EmbedConfig) -> int:
    return default_workers() if config.num_workers is None else config.num_workers


def _set_threads(config: EmbedConfig) -> None:
    """On cpu, leave the decoding workers their cores: oversubscribed OpenMP threads spin (measured 30x slower)."""
    if config.device != "cpu":
        return
    import torch

    torch.set_num_threads(config.threads or max(1, (os.cpu_count() or 1) - _workers(config)))


def _counts(folder: Path, work: list[ShardWork]) -> dict[str, Any]:
    done = EmbeddingSet(folder).shards()
    rows = sum(int(read_json(folder / f"{shard}.done.json")["rows"]) for shard in done)
    seconds = sum(float(read_json(folder / f"{shard}.done.json")["seconds"]) for shard in done)
    return {"counts": {"shards": len(done), "rows": rows, "source_shards": len(work)}, "seconds": round(seconds, 3)}
