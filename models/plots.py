"""PNG plots of training and evaluation curves (matplotlib, Agg backend: no display needed)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)


def plot_curves(
    series: Mapping[str, Sequence[float]],
    path: Path | str,
    title: str = "",
    xlabel: str = "epoch",
    ylabel: str = "loss",
    x: Mapping[str, Sequence[float]] | None = None,
) -> Path:
    """One line per named series (x defaults to 1, 2, ...); writes a PNG and returns its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    try:
        for name, ys in series.items():
            xs = list(x[name]) if x and name in x else list(range(1, len(ys) + 1))
            ax.plot(xs, list(ys), marker="o" if len(ys) < 40 else None, markersize=3, label=name)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if title:
            ax.set_title(title)
        ax.grid(alpha=0.3)
        if series:
            ax.legend()
        fig.tight_layout()
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
    return path
