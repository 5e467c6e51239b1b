"""Leak-safe training subsets: split by article, balance over a field with a cap, exclude concepts and eval sets.

`plan_sampling` turns the selected rows into one row table per output (`train`, `val`, `test` or the single
subset), each shuffled (seeded) so samples are mixed across output shards:
- splits are by article (`pmcid`): the articles are permuted with the seed and cut by the fractions, so no article
  is in two splits; training images that are near-duplicates of a held-out image (same SHA-256, or perceptual hash
  within `NEAR_DUPLICATE_BITS`) are dropped from the earlier split (train before val before test);
- evaluation sets (a subset name or a keys file) are excluded by key, by article and by near-duplicate image;
- `exclude_concepts` drops rows whose concept is one of them; `balance FIELD` keeps at most `cap` rows per value
  of FIELD in each output (a seeded choice).
Concepts come from the catalog's `concept` column (annotation labels) or from a labels JSONL (`key` or
`pmcid`+`figure_id`, and `concept`), e.g. the sample mirror's ground_truth.jsonl.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from workbench.catalog.subset_manifest import KEYS, SubsetError
from workbench.errors import InputNotFound
from workbench.workspace import Workspace

NEAR_DUPLICATE_BITS = 3  # Hamming distance between 64-bit perceptual hashes (4 bands of 16: exact band search)
BALANCE_FIELDS = {"concept": "concept", "cluster": "cluster", "journal": "article_journal", "year": "article_year"}
SPLIT_NAMES = ("train", "val", "test")
_BANDS = 4


@dataclass(frozen=True)
class Sampling:
    """How rows become outputs. `split`: ordered (name, fraction) pairs, empty for a single output."""

    seed: int = 0
    split: tuple[tuple[str, float], ...] = ()
    balance: str | None = None
    cap: int | None = None
    exclude_concepts: tuple[str, ...] = ()
    exclude_eval: tuple[str, ...] = ()  # subset names (NAME or NAME/SPLIT) or keys files
    labels: str | None = None  # a labels JSONL with concepts
    shuffle: bool = True

    def __post_init__(self) -> None:
        if self.split:
            total = sum(fraction for _, fraction in self.split)
            if any(fraction < 0 for _, fraction in self.split) or abs(total - 1.0) > 1e-6:
                raise SubsetError(f"split fractions must be 0 or more and sum to 1, got {total:g}")
            names = [name for name, _ in self.split]
            if len(set(names)) != len(names):
                raise SubsetError(f"split names repeat: {', '.join(names)}")
        if (self.balance is None) != (self.cap is None):
            raise SubsetError("--balance FIELD and --cap N go together")
        if self.balance is not None and self.balance not in BALANCE_FIELDS:
            raise SubsetError(f"cannot balance over {self.balance!r}: use one of {', '.join(BALANCE_FIELDS)}")
        if self.cap is not None and self.cap < 1:
            raise SubsetError(f"--cap must be 1 or more, got {self.cap}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "split": [[name, fraction] for name, fraction in self.split],
            "balance": self.balance,
            "cap": self.cap,
            "exclude_concepts": list(self.exclude_concepts),
            "exclude_eval": list(self.exclude_eval),
            "labels": self.labels,
            "shuffle": self.shuffle,
            "near_duplicate_bits": NEAR_DUPLICATE_BITS,
        }


def parse_split(text: str) -> tuple[tuple[str, float], ...]:
    """`train=0.8,val=0.1,test=0.1` -> (("train", 0.8), ...)."""
    pairs = []
    for part in text.split(","):
        name, _, value = part.strip().partition("=")
        try:
            fraction = float(value)
        except ValueError:
            raise SubsetError(
                f"--split {text!r}: expected NAME=FRACTION,... (e.g. train=0.8,val=0.1,test=0.1)"
            ) from None
        if not name.isidentifier():
            raise SubsetError(f"--split {text!r}: bad split name {name!r}")
        pairs.append((name, fraction))
    return tuple(pairs)


@dataclass
class Plan:
    """The rows of each output (in write order) and what was dropped, by reason."""

    outputs: dict[str, pa.Table]
    dropped: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "outputs": {
                name: {"samples": table.num_rows, "articles": len(set(table.column("pmcid").to_pylist()))}
                for name, table in self.outputs.items()
            },
            "dropped": dict(self.dropped),
        }


# --- inputs ---------------------------------------------------------------------------------------------------
def read_labels(path: str) -> tuple[dict[str, str], dict[tuple[str, str], str]]:
    """Concepts by key and by (pmcid, figure_id) from a JSONL file."""
    by_key: dict[str, str] = {}
    by_figure: dict[tuple[str, str], str] = {}
    file = Path(path).expanduser()
    if not file.is_file():
        raise InputNotFound(f"labels file {path} not found")
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise SubsetError(f"{path}:{number}: not a JSON line") from None
        concept = row.get("concept") if isinstance(row, dict) else None
        if concept is None:
            continue
        if row.get("key"):
            by_key[str(row["key"])] = str(concept)
        elif row.get("pmcid") and row.get("figure_id"):
            by_figure[(str(row["pmcid"]), str(row["figure_id"]))] = str(concept)
    return by_key, by_figure


def _concepts(table: pa.Table, labels: str | None) -> list[str | None]:
    base = table.column("concept").to_pylist() if "concept" in table.column_names else [None] * table.num_rows
    if not labels:
        return base
    by_key, by_figure = read_labels(labels)
    keys, pmcids, figures = (table.column(c).to_pylist() for c in ("key", "pmcid", "figure_id"))
    return [
        by_key.get(k) or by_figure.get((p, f)) or old for k, p, f, old in zip(keys, pmcids, figures, base, strict=True)
    ]


def _field_values(table: pa.Table, name: str, workspace: Workspace, labels: str | None) -> list[Any]:
    if name == "concept":
        return _concepts(table, labels)
    if name == "cluster":
        from workbench.cluster.assign import current_clustering, read_assignments

        clustering = current_clustering(workspace)
        if clustering is None:
            raise SubsetError("--balance cluster: the workspace has no clustering (run `workbench cluster fit`)")
        assignments = read_assignments(workspace, clustering)
        by_key = dict(zip(assignments.keys, assignments.cluster_ids.tolist(), strict=True))
        return [by_key.get(key) for key in table.column("key").to_pylist()]
    return table.column(BALANCE_FIELDS[name]).to_pylist()


def eval_rows(workspace: Workspace, source: str) -> tuple[set[str], set[str], list[str], set[str]]:
    """(keys, pmcids, phashes, sha256s) of an evaluation set: a subset NAME[/SPLIT] or a keys file."""
    import pyarrow.parquet as pq

    parts = [part for part in source.split("/") if part and part not in (".", "..")]
    rows = workspace.subsets.joinpath(*parts) / "figures.parquet" if parts else None
    if rows is not None and rows.is_file():
        return _eval_columns(pq.read_table(rows, columns=["key", "pmcid", "image_phash", "image_sha256"]))
    path = Path(source).expanduser()
    if not path.is_file():
        raise InputNotFound(f"evaluation set {source} is neither a subset of this workspace nor a keys file")
    keys = {line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}
    return keys, set(), [], set()


def _eval_columns(table: pa.Table) -> tuple[set[str], set[str], list[str], set[str]]:
    return (
        set(table.column("key").to_pylist()),
        set(table.column("pmcid").to_pylist()),
        [h for h in table.column("image_phash").to_pylist() if h],
        {h for h in table.column("image_sha256").to_pylist() if h},
    )


# --- near duplicates ------------------------------------------------------------------------------------------
def _hashes(values: list[str | None]) -> np.ndarray:
    return np.array([int(v, 16) if v else 0 for v in values], dtype=np.uint64)


def near_duplicates(candidates: list, held_out: list, bits: int = NEAR_DUPLICATE_BITS) -> np.ndarray:
    """Mask of candidate perceptual hashes within `bits` of any held-out one (band search, then exact check)."""
    mask = np.zeros(len(candidates), dtype=bool)
    held = _hashes([h for h in held_out if h])
    if not len(held) or not candidates:
        return mask
    cand = _hashes(candidates)
    present = np.array([bool(h) for h in candidates])
    shift = 64 // _BANDS
    band_mask = np.uint64((1 << shift) - 1)
    possible = np.zeros(len(candidates), dtype=bool)
    for band in range(_BANDS):
        offset = np.uint64(band * shift)
        possible |= np.isin((cand >> offset) & band_mask, (held >> offset) & band_mask)
    for index in np.flatnonzero(possible & present):
        distance = np.unpackbits(np.bitwise_xor(held, cand[index]).view(np.uint8)).reshape(-1, 64).sum(axis=1)
        mask[index] = bool((distance <= bits).any())
    return mask


# --- planning -------------------------------------------------------------------------------------------------
def _drop(table: pa.Table, mask: np.ndarray, plan: Plan, reason: str) -> pa.Table:
    if mask.any():
        plan.dropped[reason] = plan.dropped.get(reason, 0) + int(mask.sum())
        return table.filter(pa.array(~mask))
    return table


def _cap(table: pa.Table, values: list[Any], cap: int, rng: np.random.Generator) -> tuple[pa.Table, int]:
    groups: dict[Any, list[int]] = {}
    for index, value in enumerate(values):
        groups.setdefault(value, []).append(index)
    keep: list[int] = []
    for value in sorted(groups, key=lambda v: (v is None, str(v))):
        rows = groups[value]
        keep.extend(sorted(rng.choice(rows, size=cap, replace=False).tolist()) if len(rows) > cap else rows)
    return table.take(pa.array(sorted(keep), type=pa.int64())), table.num_rows - len(keep)


def _article_splits(pmcids: list[str], split: tuple[tuple[str, float], ...], seed: int) -> dict[str, str]:
    articles = sorted(set(pmcids))
    order = np.random.default_rng([seed, 1]).permutation(len(articles))
    bounds = np.round(np.cumsum([fraction for _, fraction in split]) * len(articles)).astype(int)
    assigned: dict[str, str] = {}
    start = 0
    for (name, _), end in zip(split, bounds, strict=True):
        for position in order[start:end]:
            assigned[articles[position]] = name
        start = end
    return assigned


def plan_sampling(table: pa.Table, sampling: Sampling, workspace: Workspace, name: str) -> Plan:
    """Split, exclude, balance and shuffle the selected rows (in key order) into the outputs."""
    plan = Plan(outputs={})
    if sampling.exclude_concepts:
        concepts = _concepts(table, sampling.labels)
        excluded = set(sampling.exclude_concepts)
        table = _drop(table, np.array([c in excluded for c in concepts], dtype=bool), plan, "excluded_concept")
    for source in sampling.exclude_eval:
        keys, pmcids, phashes, sha256s = eval_rows(workspace, source)
        table = _drop(table, np.array([k in keys for k in table.column("key").to_pylist()]), plan, "eval_key")
        table = _drop(table, np.array([p in pmcids for p in table.column("pmcid").to_pylist()]), plan, "eval_article")
        same = np.array([h in sha256s for h in table.column("image_sha256").to_pylist()], dtype=bool)
        near = near_duplicates(table.column("image_phash").to_pylist(), phashes) | same
        table = _drop(table, near, plan, "eval_near_duplicate")
    if sampling.split:
        assigned = _article_splits(table.column("pmcid").to_pylist(), sampling.split, sampling.seed)
        labels = pa.array([assigned[p] for p in table.column("pmcid").to_pylist()])
        parts = {split: table.filter(pc.equal(labels, split)) for split, _ in sampling.split}
        names = [split for split, _ in sampling.split]
        for position, split in enumerate(names):  # an image may not train when it (nearly) appears held out later
            later = [parts[other] for other in names[position + 1 :]]
            if not later or not parts[split].num_rows:
                continue
            held = pa.concat_tables(later)
            same = set(held.column("image_sha256").to_pylist())
            mask = np.array([h in same for h in parts[split].column("image_sha256").to_pylist()], dtype=bool)
            mask |= near_duplicates(
                parts[split].column("image_phash").to_pylist(), held.column("image_phash").to_pylist()
            )
            parts[split] = _drop(parts[split], mask, plan, f"near_duplicate_of_later_split:{split}")
    else:
        parts = {name: table}
    for index, (output, rows) in enumerate(parts.items()):
        rng = np.random.default_rng([sampling.seed, 2, index])
        if sampling.balance is not None and sampling.cap is not None and rows.num_rows:
            values = _field_values(rows, sampling.balance, workspace, sampling.labels)
            rows, capped = _cap(rows, values, sampling.cap, rng)
            if capped:
                plan.dropped[f"cap:{output}"] = capped
        if sampling.shuffle and rows.num_rows:
            rows = rows.take(pa.array(rng.permutation(rows.num_rows), type=pa.int64()))
        plan.outputs[output] = rows
    return plan


def keys_of(folder: Path) -> list[str]:
    return [line for line in (folder / KEYS).read_text(encoding="utf-8").splitlines() if line]


def describe_plan(plan: Plan) -> Mapping[str, Any]:
    return plan.summary()


# --- writing --------------------------------------------------------------------------------------------------
SPLIT_SUMMARY = "split.json"


def materialise_sampled(
    catalog: Any,
    name: str,
    selection: Any,
    sampling: Sampling,
    *,
    shard_samples: int = 10_000,
    force: bool = False,
    progress: bool = True,
) -> list[Any]:
    """Plan the outputs and write each (WS/subsets/NAME/SPLIT/ when split, else WS/subsets/NAME/); their results.

    A split also writes WS/subsets/NAME/split.json: per split the samples and articles, and what was dropped why.
    """
    from workbench.catalog.subset import SubsetExists, SubsetSpec, materialise_subset
    from workbench.fileio import write_json_atomically

    SubsetSpec(name, selection, shard_samples, force)  # the name and filter are checked before any work
    root = catalog.workspace.subsets / name
    if sampling.split and (root / "manifest.json").is_file():
        raise SubsetExists(f"{root} holds an unsplit subset; choose another name for the split")
    table = catalog.selected_rows(selection).read_all()
    if table.num_rows == 0:
        raise SubsetError(f"the selection is empty: no figures match ({selection.describe()})")
    plan = plan_sampling(table, sampling, catalog.workspace, name)
    results = []
    for output, rows in plan.outputs.items():
        spec = SubsetSpec(
            name,
            selection,
            shard_samples,
            force,
            split=output if sampling.split else None,
            sampling=sampling.to_dict() | {"dropped": plan.dropped},
        )
        results.append(materialise_subset(catalog, spec, progress=progress, rows=rows))
    if sampling.split:
        write_json_atomically({"sampling": sampling.to_dict(), **plan.summary()}, root / SPLIT_SUMMARY)
    return results
