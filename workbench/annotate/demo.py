"""Cluster labelling measured on the sample mirror: label the N largest clusters as an expert would (from
`ground_truth.jsonl`), propagate, and compare every image's label with its ground truth.

The "expert" gives each cluster the taxonomy label (data_catalog/taxonomy/sample_mirror.yaml) of the
ground-truth concept most of its images show. Labels are recorded in the label store and read back through the
catalog (`annotations` view), so the curve measures the real propagation path. Accuracy counts an image as right
when its propagated global concept equals the one its ground truth maps to (unlabelled images count as wrong);
precision is the same over labelled images only; coverage is the labelled share.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from workbench.annotate.events import Decision, LabelStore
from workbench.annotate.taxonomy import TAXONOMY_DIR
from workbench.cluster.assign import assignments_path
from workbench.errors import InputNotFound, UserError
from workbench.workspace import Workspace

MAPPING = TAXONOMY_DIR / "sample_mirror.yaml"
ANNOTATOR = "ground-truth"


@dataclass(frozen=True)
class CurvePoint:
    clusters: int  # clusters labelled (the N largest)
    images: int  # images in the catalog
    labelled: int  # images with a propagated label
    correct: int  # of those, with the right global concept
    correct_local: int  # ... and the right local concept

    @property
    def accuracy(self) -> float:
        return self.correct / self.images if self.images else 0.0

    @property
    def precision(self) -> float:
        return self.correct / self.labelled if self.labelled else 0.0

    @property
    def coverage(self) -> float:
        return self.labelled / self.images if self.images else 0.0

    def to_dict(self) -> dict[str, float | int]:
        return {
            "clusters": self.clusters,
            "images": self.images,
            "labelled": self.labelled,
            "correct": self.correct,
            "coverage": round(self.coverage, 4),
            "accuracy": round(self.accuracy, 4),
            "precision": round(self.precision, 4),
            "local_accuracy": round(self.correct_local / self.images, 4) if self.images else 0.0,
        }


def read_truth(path: str | Path) -> dict[str, str]:
    """Image key -> ground-truth concept, from a sample mirror's ground_truth.jsonl."""
    path = Path(path)
    if not path.is_file():
        raise InputNotFound(f"no ground truth at {path}")
    truth = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            truth[f"{row['pmcid']}_{row['figure_id']}_{row['graphic_index']}"] = row["concept"]
    return truth


def read_mapping(path: str | Path = MAPPING) -> dict[str, dict[str, str]]:
    """Ground-truth concept -> {global, local, panel_type, panel_subtype} in the taxonomy."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    return {
        concept: {
            "global": entry["global"],
            "local": entry["local"],
            "panel_type": data.get("panel_type"),
            "panel_subtype": data.get("panel_subtype"),
        }
        for concept, entry in data["concepts"].items()
    }


def cluster_members(workspace: Workspace, clustering: str) -> dict[int, list[str]]:
    """Cluster id -> its image keys, largest cluster first (ties: lower id)."""
    import pyarrow.parquet as pq

    path = assignments_path(workspace, clustering)
    if not path.is_file():
        raise UserError(f"workspace {workspace.root} has no clustering {clustering!r} ({path} is missing)")
    table = pq.read_table(path, columns=["key", "cluster_id"])
    members: dict[int, list[str]] = {}
    for key, cid in zip(table.column("key").to_pylist(), table.column("cluster_id").to_pylist(), strict=True):
        members.setdefault(int(cid), []).append(key)
    return dict(sorted(members.items(), key=lambda item: (-len(item[1]), item[0])))


def expert_decisions(
    members: dict[int, list[str]], truth: dict[str, str], mapping: dict[str, dict[str, str]], clustering: str
) -> list[Decision]:
    """One decision per cluster (in the order of `members`): the label of the concept most of its images show."""
    decisions = []
    for cid, keys in members.items():
        concepts = Counter(truth[key] for key in keys if key in truth)
        if not concepts:
            continue
        entry = mapping[concepts.most_common(1)[0][0]]
        decisions.append(
            Decision(
                ANNOTATOR,
                clustering,
                "cluster",
                str(cid),
                (entry["global"],),
                (entry["local"],),
                entry["panel_type"],
                entry["panel_subtype"],
                note="majority ground-truth concept",
            )  # fmt: skip
        )
    return decisions


def curve(
    members: dict[int, list[str]],
    decisions: Sequence[Decision],
    truth: dict[str, str],
    mapping: dict[str, dict[str, str]],
    steps: Sequence[int],
    images: int,
) -> list[CurvePoint]:
    """The propagated accuracy after labelling the first N clusters of `decisions`, for each N in `steps`."""
    points = []
    for n in sorted({min(max(0, int(step)), len(decisions)) for step in steps}):
        labelled = correct = correct_local = 0
        for decision in decisions[:n]:
            for key in members[int(decision.target)]:
                labelled += 1
                expected = mapping.get(truth.get(key, ""))
                if expected and decision.global_concepts[0] == expected["global"]:
                    correct += 1
                    correct_local += decision.local_concepts[:1] == (expected["local"],)
        points.append(CurvePoint(n, images, labelled, correct, correct_local))
    return points


def catalog_point(
    workspace: Workspace, truth: dict[str, str], mapping: dict[str, dict[str, str]], clusters: int
) -> CurvePoint:
    """The same comparison made on the catalog's current labels (`annotations` view): the real propagation path."""
    from workbench.catalog import open_catalog

    with open_catalog(workspace, progress=False) as catalog:
        images = catalog.count()
        rows = catalog.execute("SELECT key, global_concepts, local_concepts FROM annotations").fetchall()
    correct = correct_local = 0
    for key, globals_, locals_ in rows:
        expected = mapping.get(truth.get(key, ""))
        if expected and globals_ and globals_[0] == expected["global"]:
            correct += 1
            correct_local += bool(locals_ and locals_[0] == expected["local"])
    return CurvePoint(clusters, images, len(rows), correct, correct_local)


def accuracy_curve(
    workspace: Workspace | str | Path,
    clustering: str,
    truth_path: str | Path,
    steps: Sequence[int],
    *,
    mapping_path: str | Path = MAPPING,
) -> tuple[list[CurvePoint], CurvePoint]:
    """Label the N largest clusters for each N in `steps` and score the propagated labels; then record the
    labels of the largest N in the store (only those not already standing: re-runs add nothing) and score what
    the catalog shows. Returns the curve and the catalog's point."""
    from workbench.annotate.io import fresh_decisions
    from workbench.catalog import open_catalog

    workspace = workspace if isinstance(workspace, Workspace) else Workspace.at(workspace)
    truth, mapping = read_truth(truth_path), read_mapping(mapping_path)
    members = cluster_members(workspace, clustering)
    decisions = expert_decisions(members, truth, mapping, clustering)
    with open_catalog(workspace, progress=False) as catalog:
        images = catalog.count()
    points = curve(members, decisions, truth, mapping, steps, images)
    chosen = decisions[: points[-1].clusters] if points else []
    store = LabelStore(workspace)
    store.record_many(fresh_decisions(store, clustering, chosen))
    return points, catalog_point(workspace, truth, mapping, len(chosen))


def describe(points: Sequence[CurvePoint]) -> str:
    lines = ["clusters labelled  images labelled  coverage  accuracy  precision"]
    for p in points:
        lines.append(
            f"{p.clusters:>17}  {p.labelled:>8} / {p.images:<5}  {p.coverage:>8.1%}  {p.accuracy:>8.1%}  "
            f"{p.precision:>9.1%}"
        )
    return "\n".join(lines)
