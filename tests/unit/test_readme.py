"""README.md's settings and metrics lists are generated from the code, so they cannot lag.

`.venv/bin/python tests/unit/test_readme.py` rewrites them after a settings field or a metric
changes; the tests fail until it has.
"""
from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
MAX_CHARS = 10_000
BLOCK = re.compile(r"(<!-- generated: (\w+) \(tests/unit/test_readme.py\) -->\n)(.*?)(<!-- end -->)", re.S)


def settings_list() -> str:
    from app.settings import Settings, env_name

    names = [env_name(key).removeprefix("STREAMRANK_") for key in Settings().values() if key != "kafka_broker"]
    return _wrap(f"`{n}`" for n in names)


def metrics_list() -> str:
    from app.metrics import Metrics

    registry = Metrics().registry
    found = []
    for collector in list(registry._collector_to_names):  # the registry lists no collectors otherwise
        labels = getattr(collector, "_labelnames", None) or getattr(collector, "labelnames", ()) or ()
        for family in collector.describe() if hasattr(collector, "describe") else []:
            name = family.name.removeprefix("streamrank_") + ("_total" if family.type == "counter" else "")
            found.append(f"`{name}{{{','.join(labels)}}}`" if labels else f"`{name}`")
    return _wrap(sorted(found))


def _wrap(items: object) -> str:
    return textwrap.fill(", ".join(items), width=96, break_on_hyphens=False, break_long_words=False) + ".\n"


GENERATORS = {"settings": settings_list, "metrics": metrics_list}


def generated(text: str) -> str:
    """`text` with every generated block replaced by what the code says now."""
    return BLOCK.sub(lambda m: m.group(1) + GENERATORS[m.group(2)]() + m.group(4), text)


def test_the_generated_lists_match_the_code():
    text = README.read_text()
    assert {m.group(2) for m in BLOCK.finditer(text)} == set(GENERATORS)
    assert generated(text) == text, "run `.venv/bin/python tests/unit/test_readme.py` to regenerate README.md"


def test_the_lists_name_every_setting_and_metric():
    text = README.read_text()
    assert "`GUARD_RATIO`" in text and "`TOPIC_PARTITIONS`" in text
    assert "`http_requests_total{route,method,status}`" in text


def test_the_readme_stays_a_reference():
    text = README.read_text()
    assert len(text) <= MAX_CHARS, f"README.md has {len(text)} characters; move detail to docs/"
    first_block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    assert [line.split()[0:2] for line in first_block.splitlines()] == [["make", "demo"], ["make", "test"]]
    for link in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (ROOT / link).exists(), link


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    README.write_text(generated(README.read_text()))
