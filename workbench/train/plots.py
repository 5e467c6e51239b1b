"""Loss and metric curves of a training run, from its metrics.jsonl (plotly figures for the notebook)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.train.metrics import read_metrics
from workbench.train.runs import METRICS


def curves(folder: str | Path) -> dict[str, list[Any]]:
    """Per logged step: samples seen (x), loss, learning rate; per validation: epoch and retrieval recalls."""
    records = read_metrics(Path(folder) / METRICS)
    train = [r for r in records if r.get("kind") == "train"]
    val = [r for r in records if r.get("kind") == "val"]
    return {
        "samples_seen": [r["epoch"] * r["samples_per_epoch"] + r["samples"] for r in train],
        "loss": [r.get("loss") for r in train],
        "lr": [r.get("lr") for r in train],
        "val_epoch": [r.get("epoch") for r in val],
        "val_image_to_text_R@1": [r.get("image_to_text_R@1") for r in val],
        "val_text_to_image_R@1": [r.get("text_to_image_R@1") for r in val],
        "val_loss": [r.get("clip_val_loss") for r in val],
    }


def metrics_figure(folder: str | Path) -> go.Figure:
    """Training loss and learning rate against samples seen; validation recalls by epoch when recorded."""
    data = curves(folder)
    has_val = bool(data["val_epoch"])
    figure = make_subplots(
        rows=1, cols=2 if has_val else 1, subplot_titles=("training loss", "validation R@1") if has_val else None
    )
    figure.add_trace(go.Scatter(x=data["samples_seen"], y=data["loss"], name="loss", mode="lines"), row=1, col=1)
    if has_val:
        for key in ("val_image_to_text_R@1", "val_text_to_image_R@1"):
            trace = go.Scatter(x=data["val_epoch"], y=data[key], name=key[4:], mode="lines+markers")
            figure.add_trace(trace, row=1, col=2)
        figure.update_xaxes(title_text="epoch", row=1, col=2)
    figure.update_xaxes(title_text="samples seen", row=1, col=1)
    figure.update_layout(height=320, title=f"training run {Path(folder).name}", margin={"t": 60, "b": 40})
    return figure
