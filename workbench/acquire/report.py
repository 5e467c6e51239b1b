"""Tables and plotly figures about the file list and the download state (used by notebooks/01_acquire)."""

from __future__ import annotations

import plotly.express as px
import plotly.graph_objects as go
import polars as pl

GROUP_ORDER = ["commercial", "noncommercial", "other"]


def counts_by_group_and_year(file_list: pl.DataFrame, year: str = "year") -> pl.DataFrame:
    """Articles per licence group and year (`year`: publication year from the citation; or a derived column)."""
    return (
        file_list.group_by(year, "license_group")
        .len("articles")
        .rename({year: "year"})
        .sort("year", "license_group", nulls_last=True)
    )


def license_group_counts(file_list: pl.DataFrame) -> pl.DataFrame:
    """Articles per licence group and licence, largest first."""
    return file_list.group_by("license_group", "license").len("articles").sort("articles", descending=True)


def plot_counts_by_group_and_year(counts: pl.DataFrame) -> go.Figure:
    """Stacked bars: articles per publication year, coloured by licence group."""
    known = counts.filter(pl.col("year").is_not_null())
    figure = px.bar(
        known,
        x="year",
        y="articles",
        color="license_group",
        category_orders={"license_group": GROUP_ORDER},
        title="Articles in the file list by publication year and licence group",
    )
    figure.update_layout(barmode="stack", xaxis_title="publication year", yaxis_title="articles")
    return figure


def status_counts(state: pl.DataFrame) -> pl.DataFrame:
    """Articles per download status (and how many are stale for extraction)."""
    if state.is_empty():
        return pl.DataFrame(
            {"status": [], "articles": [], "stale": []},
            schema={"status": pl.String, "articles": pl.UInt32, "stale": pl.UInt32},
        )
    return state.group_by("status").agg(pl.len().alias("articles"), pl.col("stale").sum().alias("stale")).sort("status")


def failures_by_reason(state: pl.DataFrame) -> pl.DataFrame:
    """Failed articles per reason, with one example error each."""
    schema = {"reason": pl.String, "articles": pl.UInt32, "example": pl.String}
    if state.is_empty():
        return pl.DataFrame(schema=schema)
    failed = state.filter(pl.col("status") == "failed")
    return (
        failed.group_by("reason")
        .agg(pl.len().alias("articles"), pl.col("error").first().alias("example"))
        .sort("articles", descending=True)
        .cast(schema)
    )


def plot_failures_by_reason(failures: pl.DataFrame) -> go.Figure:
    """Horizontal bars: failed articles per reason (an empty chart says 'no failures')."""
    figure = go.Figure(go.Bar(x=failures["articles"].to_list(), y=failures["reason"].to_list(), orientation="h"))
    title = "Failed downloads by reason" if failures.height else "Failed downloads by reason: none"
    figure.update_layout(title=title, xaxis_title="articles", yaxis_title="reason")
    return figure
