"""Show evaluation results: printed lines, a leaderboard of several models on the same tasks, a confusion matrix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from workbench.evaluate.run import RESULTS_DIR


def _ci(metric: dict[str, Any], percent: bool = True) -> str:
    scale, unit = (100.0, "%") if percent else (1.0, "")
    low, high = metric["ci95"]
    return f"{metric['value'] * scale:.1f}{unit} [95% CI {low * scale:.1f}-{high * scale:.1f}]"


def model_label(results: dict[str, Any]) -> str:
    model = results["model"]
    if model.get("initialisation_of"):
        return f"init:{model['initialisation_of']}"
    return f"run:{model['run']}" if model.get("run") else str(model["spec"])


def lines(results: dict[str, Any]) -> list[str]:
    """Human-readable summary lines of one result."""
    task, data = results["task"], results["data"]
    out = [f"task {task['name']} v{task['version']} | model {model_label(results)} | seed {results['seed']}"]
    out.append(f"images: {data['items']} ({data['decode_failures']['count']} failed to decode)")
    if "zeroshot" in results:
        zs = results["zeroshot"]
        chance = zs["chance"]
        out.append(
            f"zero-shot ({len(zs['classes'])} classes, {zs['n']} images): top-1 {_ci(zs['top1'])}, "
            f"top-5 {_ci(zs['top5'])}, balanced accuracy {_ci(zs['balanced_accuracy'])}; "
            f"chance top-1 {chance['top1'] * 100:.1f}%"
        )
    if "retrieval" in results:
        rt = results["retrieval"]
        for direction in ("image_to_text", "text_to_image"):
            metrics = rt[direction]
            recalls = ", ".join(f"R@{k} {_ci(metrics[f'R@{k}'])}" for k in (1, 5, 10))
            chance = rt["chance"].get(direction, {}).get("R@1", 0.0)
            out.append(
                f"retrieval {direction.replace('_', ' ')} ({rt['n_images']} images, {rt['n_texts']} texts): {recalls}; "
                f"mean rank {metrics['mean_rank']['value']:.1f}, median rank {metrics['median_rank']['value']:.0f}; "
                f"chance R@1 {chance * 100:.1f}%"
            )
    return out


LEADERBOARD_METRICS = (
    ("top1", ("zeroshot", "top1")),
    ("top5", ("zeroshot", "top5")),
    ("balanced_accuracy", ("zeroshot", "balanced_accuracy")),
    ("i2t_R@1", ("retrieval", "image_to_text", "R@1")),
    ("t2i_R@1", ("retrieval", "text_to_image", "R@1")),
    ("t2i_R@10", ("retrieval", "text_to_image", "R@10")),
)


def _get(results: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any] | None:
    node: Any = results
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def leaderboard_rows(all_results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (task, model): each metric's value and CI bounds, best top-1 first within a task."""
    rows = []
    for results in all_results:
        row: dict[str, Any] = {"task": results["task"]["name"], "model": model_label(results)}
        for name, path in LEADERBOARD_METRICS:
            metric = _get(results, path)
            row[name] = metric["value"] if metric else None
            row[f"{name}_ci95"] = tuple(metric["ci95"]) if metric else None
        if "zeroshot" in results:
            row["chance_top1"] = results["zeroshot"]["chance"]["top1"]
        rows.append(row)
    return sorted(rows, key=lambda r: (r["task"], -(r.get("top1") or 0.0), r["model"]))


def leaderboard(all_results: list[dict[str, Any]]) -> Any:
    """The comparison table as a polars DataFrame."""
    import polars as pl

    return pl.DataFrame(leaderboard_rows(all_results))


def leaderboard_text(all_results: list[dict[str, Any]]) -> list[str]:
    """The comparison table as fixed-width lines (percentages, CI in brackets)."""
    header = f"{'task':<18} {'model':<40} {'top-1':>24} {'t2i R@1':>24} {'i2t R@1':>24}"
    out = [header]
    for row in leaderboard_rows(all_results):
        cells = []
        for name in ("top1", "t2i_R@1", "i2t_R@1"):
            value, ci = row.get(name), row.get(f"{name}_ci95")
            cells.append(f"{value * 100:.1f} [{ci[0] * 100:.1f}-{ci[1] * 100:.1f}]" if value is not None else "-")
        out.append(f"{row['task']:<18} {row['model'][-40:]:<40} {cells[0]:>24} {cells[1]:>24} {cells[2]:>24}")
    return out


def saved_results(workspace: Path, task: str | None = None) -> list[dict[str, Any]]:
    """Every result saved under WS/evaluations (of one task when given)."""
    root = Path(workspace) / RESULTS_DIR
    pattern = f"{task}/*.json" if task else "*/*.json"
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(root.glob(pattern))]


def confusion_figure(results: dict[str, Any]) -> Any:
    """A plotly heatmap of the zero-shot confusion matrix (rows: true class, columns: predicted)."""
    import plotly.graph_objects as go

    zs = results["zeroshot"]
    figure = go.Figure(
        go.Heatmap(z=zs["confusion_matrix"], x=zs["classes"], y=zs["classes"], colorscale="Blues", hoverongaps=False)
    )
    figure.update_layout(
        title=f"{results['task']['name']}: {model_label(results)} (top-1 {zs['top1']['value'] * 100:.1f}%)",
        xaxis_title="predicted",
        yaxis_title="true",
        yaxis_autorange="reversed",
        width=640,
        height=600,
    )
    return figure


def per_class_table(all_results: list[dict[str, Any]]) -> Any:
    """Zero-shot recall per class (rows) for each model (columns), with each class's support."""
    import polars as pl

    with_zs = [r for r in all_results if "zeroshot" in r]
    if not with_zs:
        return pl.DataFrame()
    first = with_zs[0]["zeroshot"]
    columns: dict[str, list[Any]] = {
        "class": first["classes"],
        "support": [first["support"][c] for c in first["classes"]],
    }
    for results in with_zs:
        recall = results["zeroshot"]["per_class_recall"]
        columns[model_label(results)] = [recall.get(c) for c in first["classes"]]
    return pl.DataFrame(columns)


def beats_chance(results: dict[str, Any]) -> bool:
    """Zero-shot top-1's 95% CI lies wholly above chance."""
    zs = results.get("zeroshot")
    return bool(zs) and zs["top1"]["ci95"][0] > zs["chance"]["top1"]
