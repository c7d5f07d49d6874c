"""Where a command's PNG charts and its JSON result go, and how it says so.

Default: `<state_dir>/plots/<command>-<UTC timestamp>/` (a new folder per run, so reruns never
overwrite a chart someone is looking at); `--plots DIR` picks another. The command prints
`plots: <dir>` before its last line, which stays the one JSON object scripts and tests parse.
"""
from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

RESULT = "result.json"


def add_plots_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plots", type=Path, default=None, metavar="DIR",
                        help="folder for the PNG charts and result.json (default: <state dir>/plots/<command>-<UTC time>)")


def plot_dir(state_dir: Path, command: str, requested: Path | None = None, now: datetime | None = None) -> Path:
    """The folder, created: `requested` as given, else a fresh one under state_dir/plots."""
    if requested is not None:
        requested.mkdir(parents=True, exist_ok=True)
        return requested
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    base = state_dir / "plots" / f"{command}-{stamp}"
    for n in range(1, 1000):  # two runs in the same second get folders of their own
        candidate = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            candidate.mkdir(parents=True)
            return candidate
        except FileExistsError:
            continue
    raise FileExistsError(f"no free plot folder beside {base}")


def write_plots(directory: Path, result: Mapping[str, Any], draw: Callable[[Path], list[Path]]) -> list[Path]:
    """result.json, then the charts `draw` makes, then the `plots:` line; returns the PNGs.

    A chart that fails is logged, not raised: the figures (printed and in result.json) are
    what a run of minutes exists for, and must not be lost to a drawing error.
    """
    (directory / RESULT).write_text(json.dumps(result, indent=2) + "\n")
    try:
        pngs = draw(directory)
    except Exception:  # see the docstring
        log.exception("plots in %s failed; the result is in %s", directory, directory / RESULT)
        pngs = []
    print(f"plots: {directory}", flush=True)
    return pngs
