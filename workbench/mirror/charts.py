"""Scientific charts of distinct kinds drawn fast with Pillow and numpy (no matplotlib): each kind has its
own unmistakable look (bars, lines, point clouds, colour grids, boxes, wedges, step curves), so a model can learn it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

PALETTES: tuple[tuple[tuple[int, int, int], ...], ...] = (
    ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75)),
    ((102, 194, 165), (252, 141, 98), (141, 160, 203), (231, 138, 195), (166, 216, 84), (255, 217, 47)),
    ((0, 114, 178), (230, 159, 0), (0, 158, 115), (204, 121, 167), (86, 180, 233), (213, 94, 0)),
    ((40, 40, 40), (110, 110, 110), (170, 170, 170), (70, 70, 70), (140, 140, 140), (200, 200, 200)),
)
COLORMAPS: tuple[tuple[tuple[int, int, int], ...], ...] = (
    ((68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)),  # viridis-like
    ((59, 76, 192), (141, 176, 254), (221, 221, 221), (244, 154, 123), (180, 4, 38)),  # coolwarm-like
    ((0, 0, 4), (81, 18, 124), (183, 55, 121), (252, 137, 97), (252, 253, 191)),  # magma-like
    ((0, 90, 50), (120, 198, 121), (255, 255, 204), (253, 141, 60), (189, 0, 38)),  # green-red
)


@dataclass(frozen=True)
class ChartLabels:
    """What a chart is about; chosen when the article is planned so the caption can say it."""

    measure: str  # e.g. "serum IL-6"
    unit: str  # e.g. "pg/mL"
    groups: tuple[str, ...]  # e.g. ("Control", "Low dose", "High dose")
    x_label: str  # e.g. "Time (days)"


@cache
def font() -> ImageFont.ImageFont:
    """Pillow's built-in bitmap font: about ten times faster to draw than a FreeType font, and always there."""
    return ImageFont.load_default_imagefont()


@cache
def _colormap_lut(index: int) -> np.ndarray:
    anchors = np.array(COLORMAPS[index], dtype=np.float32)
    positions = np.linspace(0, 255, len(anchors))
    levels = np.arange(256)
    return np.stack([np.interp(levels, positions, anchors[:, c]) for c in range(3)], axis=1).astype(np.uint8)


class _Axes:
    """A white canvas with left/bottom axes; maps data coordinates into the plot box."""

    def __init__(self, size: tuple[int, int], rng: np.random.Generator, labels: ChartLabels, *, frame: bool = True):
        self.width, self.height = size
        self.image = Image.new("RGB", size, "white")
        self.draw = ImageDraw.Draw(self.image)
        self.palette = PALETTES[int(rng.integers(len(PALETTES)))]
        self.font = font()
        self.left, self.top = int(self.width * 0.14), int(self.height * 0.08)
        self.right, self.bottom = int(self.width * 0.96), int(self.height * 0.84)
        if frame:
            self.draw.line([(self.left, self.top), (self.left, self.bottom), (self.right, self.bottom)], fill="black")
            self.draw.text((self.left, self.height * 0.92), labels.x_label, fill="black", font=self.font)
            unit = f" ({labels.unit})" if labels.unit else ""
            self.draw.text((2, 2), f"{labels.measure}{unit}", fill="black", font=self.font)

    def x(self, value: float, low: float, high: float) -> float:
        return self.left + (value - low) / (high - low or 1.0) * (self.right - self.left)

    def y(self, value: float, low: float, high: float) -> float:
        return self.bottom - (value - low) / (high - low or 1.0) * (self.bottom - self.top)

    def y_ticks(self, low: float, high: float, count: int = 5) -> None:
        for value in np.linspace(low, high, count):
            y = self.y(value, low, high)
            self.draw.line([(self.left - 4, y), (self.left, y)], fill="black")
            self.draw.text((2, y - 5), f"{value:.3g}", fill="black", font=self.font)

    def color(self, index: int) -> tuple[int, int, int]:
        return self.palette[index % len(self.palette)]


def bar_chart(labels: ChartLabels, rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    axes = _Axes(size, rng, labels)
    means = rng.uniform(0.2, 1.0, len(labels.groups)) * 100
    errors = means * rng.uniform(0.05, 0.2, len(means))
    high = float((means + errors).max() * 1.15)
    axes.y_ticks(0, high)
    slot = (axes.right - axes.left) / len(means)
    for i, (mean, error) in enumerate(zip(means, errors, strict=True)):
        x0, x1 = axes.left + slot * (i + 0.18), axes.left + slot * (i + 0.82)
        axes.draw.rectangle([x0, axes.y(mean, 0, high), x1, axes.bottom], fill=axes.color(i), outline="black")
        xc = (x0 + x1) / 2
        axes.draw.line([(xc, axes.y(mean - error, 0, high)), (xc, axes.y(mean + error, 0, high))], fill="black")
        axes.draw.line([(xc - 5, axes.y(mean + error, 0, high)), (xc + 5, axes.y(mean + error, 0, high))], fill="black")
        axes.draw.text((x0, axes.bottom + 3), labels.groups[i][:10], fill="black", font=axes.font)
    return axes.image


def line_chart(labels: ChartLabels, rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    axes = _Axes(size, rng, labels)
    steps = int(rng.integers(6, 14))
    series = np.cumsum(rng.normal(1.0, 1.5, (len(labels.groups), steps)), axis=1) + rng.uniform(5, 20)
    low, high = float(series.min() * 0.9), float(series.max() * 1.1)
    axes.y_ticks(low, high)
    for i, values in enumerate(series):
        points = [(axes.x(t, 0, steps - 1), axes.y(v, low, high)) for t, v in enumerate(values)]
        axes.draw.line(points, fill=axes.color(i), width=2)
        for px, py in points:
            axes.draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=axes.color(i))
        axes.draw.text((axes.right - 70, axes.top + 12 * i), labels.groups[i][:12], fill=axes.color(i), font=axes.font)
    return axes.image


def scatter_plot(labels: ChartLabels, rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    axes = _Axes(size, rng, labels)
    count = int(rng.integers(40, 220))
    slope = float(rng.uniform(-1.5, 1.5))
    xs = rng.uniform(0, 10, count)
    ys = slope * xs + rng.normal(0, rng.uniform(0.5, 4), count) + 10
    low, high = float(ys.min() - 1), float(ys.max() + 1)
    axes.y_ticks(low, high)
    radius = 2 if count > 120 else 3
    for px, py, group in zip(xs, ys, rng.integers(0, len(labels.groups), count), strict=True):
        cx, cy = axes.x(px, 0, 10), axes.y(py, low, high)
        axes.draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=axes.color(int(group)))
    if rng.random() < 0.6:
        axes.draw.line(
            [(axes.x(0, 0, 10), axes.y(10, low, high)), (axes.x(10, 0, 10), axes.y(slope * 10 + 10, low, high))],
            fill="black",
            width=2,
        )
    return axes.image


def heatmap(labels: ChartLabels, rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    axes = _Axes(size, rng, labels, frame=False)
    rows, cols = int(rng.integers(6, 24)), int(rng.integers(4, 16))
    values = rng.normal(0, 1, (rows, 1)) + rng.normal(0, 1, (1, cols)) + rng.normal(0, 0.6, (rows, cols))
    scaled = np.clip((values - values.min()) / (np.ptp(values) or 1.0) * 255, 0, 255).astype(np.uint8)
    lut = _colormap_lut(int(rng.integers(len(COLORMAPS))))
    box_w, box_h = int((axes.right - axes.left) * 0.88), axes.bottom - axes.top
    grid = Image.fromarray(lut[scaled], "RGB").resize((box_w, box_h), Image.Resampling.NEAREST)
    axes.image.paste(grid, (axes.left, axes.top))
    color_bar = Image.fromarray(np.ascontiguousarray(lut[::-1][:, None, :]), "RGB").resize((10, box_h))
    axes.image.paste(color_bar, (axes.left + box_w + 8, axes.top))
    axes.draw.text((axes.left, axes.bottom + 4), labels.x_label, fill="black", font=axes.font)
    axes.draw.text((2, 2), labels.measure, fill="black", font=axes.font)
    return axes.image


def box_plot(labels: ChartLabels, rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    axes = _Axes(size, rng, labels)
    samples = [rng.normal(rng.uniform(20, 60), rng.uniform(3, 12), int(rng.integers(20, 60))) for _ in labels.groups]
    low = float(min(s.min() for s in samples) * 0.9)
    high = float(max(s.max() for s in samples) * 1.1)
    axes.y_ticks(low, high)
    slot = (axes.right - axes.left) / len(samples)
    for i, sample in enumerate(samples):
        q1, median, q3 = np.percentile(sample, [25, 50, 75])
        whisker_low = max(sample.min(), q1 - 1.5 * (q3 - q1))
        whisker_high = min(sample.max(), q3 + 1.5 * (q3 - q1))
        x0, x1 = axes.left + slot * (i + 0.25), axes.left + slot * (i + 0.75)
        xc = (x0 + x1) / 2
        axes.draw.line([(xc, axes.y(whisker_low, low, high)), (xc, axes.y(whisker_high, low, high))], fill="black")
        for end in (whisker_low, whisker_high):
            axes.draw.line([(xc - 6, axes.y(end, low, high)), (xc + 6, axes.y(end, low, high))], fill="black")
        axes.draw.rectangle(
            [x0, axes.y(q3, low, high), x1, axes.y(q1, low, high)], fill=axes.color(i), outline="black", width=2
        )
        axes.draw.line([(x0, axes.y(median, low, high)), (x1, axes.y(median, low, high))], fill="black", width=3)
        for outlier in sample[(sample < whisker_low) | (sample > whisker_high)]:
            oy = axes.y(outlier, low, high)
            axes.draw.ellipse([xc - 3, oy - 3, xc + 3, oy + 3], outline="black")
        axes.draw.text((x0, axes.bottom + 3), labels.groups[i][:10], fill="black", font=axes.font)
    return axes.image


def pie_chart(labels: ChartLabels, rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    axes = _Axes(size, rng, labels, frame=False)
    shares = rng.dirichlet(np.full(len(labels.groups), 2.0))
    diameter = int(min(axes.width * 0.6, axes.height * 0.8))
    x0, y0 = int(axes.width * 0.05), (axes.height - diameter) // 2
    start = float(rng.uniform(0, 360))
    for i, share in enumerate(shares):
        end = start + 360 * float(share)
        axes.draw.pieslice([x0, y0, x0 + diameter, y0 + diameter], start, end, fill=axes.color(i), outline="white")
        start = end
    legend_x = x0 + diameter + 12
    for i, (group, share) in enumerate(zip(labels.groups, shares, strict=True)):
        y = y0 + 18 * i
        axes.draw.rectangle([legend_x, y, legend_x + 10, y + 10], fill=axes.color(i))
        axes.draw.text((legend_x + 14, y - 2), f"{group[:12]} {share:.0%}", fill="black", font=axes.font)
    axes.draw.text((2, 2), labels.measure, fill="black", font=axes.font)
    return axes.image


def histogram(labels: ChartLabels, rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    axes = _Axes(size, rng, labels)
    values = rng.gamma(rng.uniform(1.5, 6), 1.0, int(rng.integers(200, 2000)))
    counts, _ = np.histogram(values, bins=int(rng.integers(12, 36)))
    high = float(counts.max() * 1.1)
    axes.y_ticks(0, high)
    width = (axes.right - axes.left) / len(counts)
    color = axes.color(0)
    for i, count in enumerate(counts):
        x0 = axes.left + width * i
        axes.draw.rectangle([x0, axes.y(count, 0, high), x0 + width, axes.bottom], fill=color, outline="white")
    return axes.image


def survival_curve(labels: ChartLabels, rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    axes = _Axes(size, rng, labels)
    axes.y_ticks(0, 1)
    horizon = 60.0
    for i, group in enumerate(labels.groups[:3]):
        times = np.sort(rng.exponential(rng.uniform(20, 90), int(rng.integers(20, 60))))
        censored = rng.random(len(times)) < 0.25
        survival, points = 1.0, [(axes.x(0, 0, horizon), axes.y(1, 0, 1))]
        at_risk = len(times)
        for time, is_censored in zip(times, censored, strict=True):
            if time > horizon:
                break
            x = axes.x(float(time), 0, horizon)
            if is_censored:
                y = axes.y(survival, 0, 1)
                axes.draw.line([(x, y - 4), (x, y + 4)], fill=axes.color(i))
            else:
                points.append((x, axes.y(survival, 0, 1)))
                survival *= 1 - 1 / at_risk
                points.append((x, axes.y(survival, 0, 1)))
            at_risk -= 1
        points.append((axes.right, axes.y(survival, 0, 1)))
        axes.draw.line(points, fill=axes.color(i), width=2)
        axes.draw.text((axes.right - 80, axes.top + 12 * i), group[:12], fill=axes.color(i), font=axes.font)
    return axes.image


CHART_RENDERERS: dict[str, Callable[[ChartLabels, np.random.Generator, tuple[int, int]], Image.Image]] = {
    "bar_chart": bar_chart,
    "line_chart": line_chart,
    "scatter_plot": scatter_plot,
    "heatmap": heatmap,
    "box_plot": box_plot,
    "pie_chart": pie_chart,
    "histogram": histogram,
    "survival_curve": survival_curve,
}
