"""docs/figures.md is generated from the bench outputs committed in docs/results/, so the
figures the docs quote come from a file a bench wrote, not from prose.

A record in docs/results/ is a bench's last-line JSON (`result`) with the command that printed
it, the day, the code and the machine. `.venv/bin/python tests/unit/test_docs_figures.py`
rewrites docs/figures.md after a record is added or changed; the tests fail until it has.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "docs" / "results"
FIGURES = ROOT / "docs" / "figures.md"
RECORD_KEYS = {"title", "command", "measured", "code", "machine", "note", "result"}
HEAD = """# streamrank: measured figures

Generated from the bench outputs in [results/](results/) by `tests/unit/test_docs_figures.py`
(do not edit by hand). Each section is one run: the command that printed it, the day, the code
it ran on, and every figure of its JSON line. Ratios and baselines are from the same run.
"""


def flat(value: object, prefix: str = "") -> list[tuple[str, object]]:
    """(dotted key, leaf value) of a JSON value, in its own order."""
    if isinstance(value, dict):
        return [pair for key, child in value.items() for pair in flat(child, f"{prefix}{key}.")]
    return [(prefix.rstrip("."), value)]


def section(path: Path) -> str:
    record = json.loads(path.read_text())
    rows = "\n".join(f"| `{key}` | {json.dumps(value)} |" for key, value in flat(record["result"]))
    return (f"\n## {record['title']}\n\n`{record['command']}`\n\n"
            f"Measured {record['measured']} on {record['code']} ({record['machine']}); {record['note']}. "
            f"[{path.name}](results/{path.name})\n\n| figure | value |\n|---|---|\n{rows}\n")


def figures() -> str:
    return HEAD + "".join(section(path) for path in sorted(RESULTS.glob("*.json")))


def test_every_record_has_its_command_and_origin():
    paths = sorted(RESULTS.glob("*.json"))
    assert paths, "no bench output committed in docs/results/"
    for path in paths:
        record = json.loads(path.read_text())
        assert set(record) == RECORD_KEYS, path.name
        command = re.sub(r"^(?:[A-Z_][A-Z0-9_]*=\S*\s+)+", "", record["command"])  # settings it ran with first
        assert command.startswith((".venv/bin/", "bench/", "make ")), path.name
        assert flat(record["result"]), path.name


def test_figures_md_is_generated_from_the_records():
    assert FIGURES.read_text() == figures(), "run `.venv/bin/python tests/unit/test_docs_figures.py`"


def test_a_changed_record_shows_in_the_generated_page(tmp_path):
    record = json.loads(sorted(RESULTS.glob("*.json"))[0].read_text())
    record["result"] = {"events_per_s": 1234.5}
    path = tmp_path / "probe.json"
    path.write_text(json.dumps(record))
    assert "| `events_per_s` | 1234.5 |" in section(path)


if __name__ == "__main__":
    FIGURES.write_text(figures())
