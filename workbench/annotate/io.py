"""Import and export labels: BIOMEDICA's `cluster_labels.json`, a CSV of targets, and the full event log (Parquet).

- BIOMEDICA's format: `{"<cluster id>": {"panel_type", "panel_subtype", "global_class": [..], "local_class": [..]}}`
  (json.dumps with default separators, ids in numeric order, no final newline). Its ids are taken as ours when the
  clustering was fitted with them (or is external: `external=True`, nothing to check against), else mapped by an
  id table (CSV with columns `source_id,cluster_id`; ids the table lacks are skipped and counted). Its labels are
  kept as they are (`strict=False`: BIOMEDICA's own file puts 93 local concepts under another global and gives
  997 clusters a subtype contradicting their panel type), so export gives the same bytes back.
- CSV: columns `target,global,local,panel_type,panel_subtype` (optional `note`); target is a cluster id or an
  image key; several values in one field are `|`-separated; spellings are matched without case.
- Export: `biomedica` writes the derived cluster labels (contested clusters are left out) in BIOMEDICA's format;
  `events` writes every event of the clustering (and every image event) as Parquet.
Every target is checked against the workspace (cluster ids of the clustering, keys of the catalog) and every label
against the taxonomy before anything is stored; one bad row stores nothing. Re-importing the same file records
nothing new (a decision equal to the annotator's standing one is skipped).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from workbench.annotate.derive import Label, current_labels, derive
from workbench.annotate.events import EVENT_FIELDS, Decision, LabelStore
from workbench.errors import InputNotFound, UserError
from workbench.fileio import write_bytes_atomically, write_parquet_atomically

CSV_COLUMNS = ("target", "global", "local", "panel_type", "panel_subtype")
EXPORT_FORMATS = ("biomedica", "events")
_BIOMEDICA_FIELDS = ("panel_type", "panel_subtype", "global_class", "local_class")


@dataclass(frozen=True)
class ImportReport:
    decisions: int  # decisions in the file
    recorded: int  # appended to the store
    unchanged: int  # equal to the annotator's standing decision: not appended again
    unmapped: int  # source ids the id table does not map
    inconsistent: int  # labels that break the taxonomy's panel/local-concept rules (kept as they are)

    def describe(self) -> str:
        extra = f", {self.unmapped} unmapped id(s) skipped" if self.unmapped else ""
        extra += f", {self.inconsistent} label(s) outside the taxonomy's panel rules kept" if self.inconsistent else ""
        return f"imported {self.decisions} decision(s): {self.recorded} recorded, {self.unchanged} unchanged{extra}"


def read_decisions(
    path: str | Path,
    store: LabelStore,
    clustering: str,
    annotator: str,
    *,
    id_map: str | Path | None = None,
) -> tuple[list[Decision], int, bool]:
    """Decisions in a BIOMEDICA JSON or CSV file (by its content), the count of unmapped ids, and whether the
    file is BIOMEDICA's format (checked leniently)."""
    path = Path(path)
    if not path.is_file():
        raise InputNotFound(f"no label file {path}")
    text = path.read_text(encoding="utf-8-sig")
    if text.lstrip().startswith("{"):
        mapping = _read_id_map(Path(id_map)) if id_map else None
        decisions, unmapped = _biomedica_decisions(text, path, clustering, annotator, mapping, store)
        return decisions, unmapped, True
    if id_map:
        raise UserError("--id-map applies to BIOMEDICA's cluster_labels.json format, not to CSV")
    return _csv_decisions(text, path, clustering, annotator, store), 0, False


def import_labels(
    store: LabelStore,
    path: str | Path,
    clustering: str,
    annotator: str,
    *,
    id_map: str | Path | None = None,
    external: bool = False,
) -> ImportReport:
    """Check and append the decisions of a label file (see the module docstring); returns what happened."""
    from workbench.annotate.targets import check_targets

    decisions, unmapped, lenient = read_decisions(path, store, clustering, annotator, id_map=id_map)
    check_targets(store.workspace, clustering, decisions, external=external, where=str(path))
    inconsistent = 0
    for decision in decisions:
        try:
            store.taxonomy.check(decision, strict=True)
        except UserError:
            if not lenient:
                raise
            inconsistent += 1
    fresh = fresh_decisions(store, clustering, decisions)
    store.record_many(fresh, strict=not lenient)
    return ImportReport(len(decisions), len(fresh), len(decisions) - len(fresh), unmapped, inconsistent)


def fresh_decisions(store: LabelStore, clustering: str, decisions: Iterable[Decision]) -> list[Decision]:
    """The label decisions that differ from their annotator's standing label (what re-recording would change)."""
    states = derive(store.events(clustering), clustering).states

    def standing(decision: Decision) -> Label | None:
        state = states.get((decision.target_kind, decision.target))
        return state.by_annotator.get(decision.annotator) if state else None

    return [d for d in decisions if d.action != "label" or standing(d) != Label.of(d)]


def _biomedica_decisions(
    text: str, path: Path, clustering: str, annotator: str, mapping: dict[str, str] | None, store: LabelStore
) -> tuple[list[Decision], int]:
    try:
        data = json.loads(text)
    except ValueError as error:
        raise UserError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected an object of cluster id -> label (BIOMEDICA's cluster_labels.json)")
    decisions, unmapped = [], 0
    for source_id, label in data.items():
        if not isinstance(label, dict) or set(label) != set(_BIOMEDICA_FIELDS):
            raise UserError(
                f"{path}: cluster {source_id!r} must have exactly the fields {', '.join(_BIOMEDICA_FIELDS)}"
            )
        if not all(
            isinstance(label[k], list) and all(isinstance(v, str) for v in label[k]) for k in _BIOMEDICA_FIELDS[2:]
        ):
            raise UserError(f"{path}: cluster {source_id!r}: global_class and local_class must be lists of strings")
        target = mapping.get(str(source_id)) if mapping is not None else str(source_id)
        if target is None:
            unmapped += 1
            continue
        if not target.isdigit():
            raise UserError(f"{path}: cluster id {source_id!r} is not a whole number")
        decision = _decision(
            store, path, annotator, clustering, "cluster", target, label["global_class"], label["local_class"],
            label["panel_type"], label["panel_subtype"], "", exact=True,
        )  # fmt: skip
        decisions.append(decision)
    return decisions, unmapped


def _csv_decisions(text: str, path: Path, clustering: str, annotator: str, store: LabelStore) -> list[Decision]:
    reader = csv.DictReader(text.splitlines())
    columns = tuple(name.strip() for name in (reader.fieldnames or ()))
    missing = [name for name in CSV_COLUMNS if name not in columns]
    unknown = [name for name in columns if name not in (*CSV_COLUMNS, "note")]
    if missing or unknown:
        raise UserError(
            f"{path}: a label CSV has the columns {','.join(CSV_COLUMNS)} (and optionally note); "
            f"{'missing ' + ', '.join(missing) if missing else 'unknown ' + ', '.join(unknown)}"
        )
    decisions = []
    for line, row in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items() if k is not None}
        if None in row.values() or not row.get("target"):
            raise UserError(f"{path} line {line}: no target (a cluster id or an image key)")
        target = row["target"]
        kind = "cluster" if target.isdigit() else "image"
        decisions.append(
            _decision(
                store,
                f"{path} line {line}",
                annotator,
                clustering,
                kind,
                target,
                _split(row["global"]),
                _split(row["local"]),
                row["panel_type"] or None,
                row["panel_subtype"] or None,
                row.get("note", ""),
                exact=False,
            )  # fmt: skip
        )
    if not decisions:
        raise UserError(f"{path}: no labels in the file")
    return decisions


def _decision(
    store: LabelStore,
    where: Any,
    annotator: str,
    clustering: str,
    kind: str,
    target: str,
    globals_: list[str],
    locals_: list[str],
    panel_type: str | None,
    panel_subtype: str | None,
    note: str,
    *,
    exact: bool,
) -> Decision:
    taxonomy = store.taxonomy
    try:
        if not exact:  # human-written CSV: match spellings without case
            globals_ = [taxonomy.resolve("global", value) for value in globals_]
            locals_ = [taxonomy.resolve("local", value) for value in locals_]
            panel_type = taxonomy.resolve("panel_type", panel_type) if panel_type else None
            panel_subtype = taxonomy.resolve("panel_subtype", panel_subtype) if panel_subtype else None
        decision = Decision(annotator, clustering, kind, target, tuple(globals_), tuple(locals_), panel_type,
                            panel_subtype, note)  # fmt: skip
        taxonomy.check(decision, strict=not exact)
    except UserError as error:
        raise UserError(f"{where}: {error}") from None
    return decision


def _split(value: str) -> list[str]:
    return [item.strip() for item in (value or "").split("|") if item.strip()]


def _read_id_map(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise InputNotFound(f"no id table {path}")
    reader = csv.DictReader(path.read_text(encoding="utf-8-sig").splitlines())
    if tuple(reader.fieldnames or ()) != ("source_id", "cluster_id"):
        raise UserError(f"{path}: an id table has exactly the columns source_id,cluster_id")
    mapping: dict[str, str] = {}
    for line, row in enumerate(reader, start=2):
        source, target = (row["source_id"] or "").strip(), (row["cluster_id"] or "").strip()
        if not source.isdigit() or not target.isdigit():
            raise UserError(f"{path} line {line}: source_id and cluster_id must be whole numbers")
        if source in mapping:
            raise UserError(f"{path} line {line}: source id {source} is mapped twice")
        mapping[source] = str(int(target))
    return mapping


# --- export -------------------------------------------------------------------------------------------------
def biomedica_json(labels: Iterable[tuple[int, Label]]) -> str:
    """Cluster labels in BIOMEDICA's `cluster_labels.json` form (numeric id order, default separators)."""
    data = {
        str(cluster_id): {
            "panel_type": label.panel_type,
            "panel_subtype": label.panel_subtype,
            "global_class": list(label.global_concepts),
            "local_class": list(label.local_concepts),
        }
        for cluster_id, label in sorted(labels)
    }
    return json.dumps(data, ensure_ascii=False)


def export_labels(store: LabelStore, clustering: str, fmt: str, out: str | Path) -> str:
    """Write the clustering's labels (`biomedica`) or its event log (`events`, Parquet) to `out`; one line back."""
    out = Path(out)
    if fmt not in EXPORT_FORMATS:
        raise UserError(f"--format must be one of {', '.join(EXPORT_FORMATS)}, got {fmt!r}")
    if fmt == "biomedica":
        labels = current_labels(store, clustering)
        write_bytes_atomically(out, biomedica_json(labels.clusters.items()).encode())
        contested = sum(1 for state in labels.contested if state.target_kind == "cluster")
        left = f" ({contested} contested cluster(s) left out)" if contested else ""
        return f"wrote {len(labels.clusters)} cluster label(s) of {clustering} to {out}{left}"
    events = store.events(clustering)
    table = events_table(events)
    write_parquet_atomically(table, out)
    return f"wrote {table.num_rows} event(s) of {clustering} to {out}"


def events_table(events: Iterable[Any]) -> pa.Table:
    """The event log as an Arrow table (one row per event, concepts as lists)."""
    rows = [
        {
            "id": event.id,
            "created_at": event.created_at,
            **{name: getattr(event.decision, name) for name in EVENT_FIELDS},
        }
        for event in events
    ]
    schema = pa.schema(
        [("id", pa.int64()), ("created_at", pa.string())]
        + [(name, pa.list_(pa.string()) if name.endswith("concepts") else pa.string()) for name in EVENT_FIELDS]
    )
    for row in rows:
        row["global_concepts"], row["local_concepts"] = list(row["global_concepts"]), list(row["local_concepts"])
    return pa.Table.from_pylist(rows, schema=schema)
