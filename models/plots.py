"""PNG plots of training and evaluation curves (matplotlib, Agg backend: no display needed)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot loads: no display needed
import matplotlib.pyplot as plt  # (the backend must be chosen first)


def plot_curves(
    series: Mapping[str, Sequence[float]],
    path: Path | str,
    title: str = "",
    xlabel: str = "epoch",
    ylabel: str = "loss",
    x: Mapping[str, Sequence[float]] | None = None,
) -> Path:
    """One line per named series (x defaults to 1, 2, ...); writes a PNG and returns its path."""
    return plot_panels([Panel(series, title, xlabel, ylabel, x)], path, dpi=100)


@dataclass(frozen=True)
class Panel:
    """One chart of a figure: named series of y values and, optionally, their x values."""

    series: Mapping[str, Sequence[float]]
    title: str = ""
    xlabel: str = "epoch"
    ylabel: str = "loss"
    x: Mapping[str, Sequence[float]] | None = None


def plot_panels(panels: Sequence[Panel], path: Path | str, dpi: int = 80) -> Path:
    """The panels side by side in one PNG; returns its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, len(panels), figsize=(7 if len(panels) == 1 else 4.7 * len(panels), 4),
                             dpi=dpi, squeeze=False)
    try:
        for ax, panel in zip(axes[0], panels):
            _draw(ax, panel)
        fig.tight_layout()
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
    return path


def _draw(ax: Any, panel: Panel) -> None:
    for name, ys in panel.series.items():
        xs = list(panel.x[name]) if panel.x and name in panel.x else list(range(1, len(ys) + 1))
        ax.plot(xs, list(ys), marker="o" if len(ys) < 40 else None, markersize=3, label=name)
    ax.set_xlabel(panel.xlabel)
    ax.set_ylabel(panel.ylabel)
    if panel.title:
        ax.set_title(panel.title)
    ax.grid(alpha=0.3)
    if panel.series:
        ax.legend()


def plot_bars(
    groups: Mapping[str, Mapping[str, float]],
    path: Path | str,
    title: str = "",
    ylabel: str = "",
) -> Path:
    """Grouped bars: one group per metric, one bar per system (`groups` is system -> metric -> value).

    Metrics are those of the first system, in its order; a system without one leaves a gap.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metrics = list(next(iter(groups.values()), {}))
    width = 0.8 / max(1, len(groups))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(metrics) * max(1, len(groups)) / 2 + 3), 4), dpi=100)
    try:
        for i, (system, values) in enumerate(groups.items()):
            xs = [m + (i - (len(groups) - 1) / 2) * width for m in range(len(metrics))]
            heights = [values.get(m, float("nan")) for m in metrics]
            bars = ax.bar(xs, heights, width, label=system)
            ax.bar_label(bars, labels=[_figure(v) for v in heights], fontsize=7)  # bars alone hide small gaps
        ax.set_xticks(range(len(metrics)), metrics)
        ax.set_ylim(top=ax.get_ylim()[1] * 1.2)  # headroom for the labels and the legend
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
        if groups:
            ax.legend()
        fig.tight_layout()
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
    return path


def _figure(value: float) -> str:
    """A bar's label: three decimals for scores and ratios, thousands separators for rates."""
    if value != value:  # NaN: the system lacks this metric
        return ""
    return f"{value:.3f}" if abs(value) < 100 else f"{value:,.0f}"


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 1]): a measured value, never an interpolated one."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


MARKED = (0.5, 0.95, 0.99)


def plot_distribution(
    samples: Mapping[str, Sequence[float]],
    path: Path | str,
    title: str = "",
    xlabel: str = "latency (ms)",
    marks: Sequence[float] = MARKED,
) -> Path:
    """Empirical CDF of each named sample set, its p50/p95/p99 marked; log x when the tail is long.

    A CDF rather than a histogram: several passes overlay legibly and the percentiles read
    straight off the y axis.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    try:
        for name, values in samples.items():
            _draw_cdf(ax, name, sorted(values), marks)
        for q in marks:  # guides: where each curve crosses one is its percentile
            ax.axhline(q, color="grey", linestyle=":", linewidth=0.6)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("share of samples at or below")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if _long_tail(samples):
            ax.set_xscale("log")
        if samples:
            ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
    return path


def _draw_cdf(ax: Any, name: str, ordered: list[float], marks: Sequence[float]) -> None:
    if not ordered:
        return
    shares = [0.0] + [(i + 1) / len(ordered) for i in range(len(ordered))]  # from 0: where the curve starts
    label = name + " (" + ", ".join(f"p{round(q * 100)} {_value(percentile(ordered, q))}" for q in marks) + ")"
    (line,) = ax.step([ordered[0], *ordered], shares, where="post", label=label)
    for q in marks:
        ax.plot([percentile(ordered, q)], [q], marker="o", color=line.get_color(), markersize=4)


def _value(value: float) -> str:
    """A percentile in a legend: three significant digits, whole numbers from 1000 (no 1.05e+03)."""
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def _long_tail(samples: Mapping[str, Sequence[float]]) -> bool:
    """Log scale when the largest value is 20x the smallest positive median or more."""
    medians = [percentile(v, 0.5) for v in samples.values() if v]
    positive = [m for m in medians if m > 0]
    largest = max((max(v) for v in samples.values() if v), default=0.0)
    return bool(positive) and largest >= 20 * min(positive)
