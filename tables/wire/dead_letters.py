"""The dead-letter format every reader uses: the original bytes, with where and why as headers."""
from __future__ import annotations


def dead_letter_headers(reason: str, topic: str, partition: int, offset: int) -> list[tuple[str, bytes]]:
    """Where a dead letter came from and why; its value is the original bytes, unchanged."""
    return [("reason", reason.encode("utf-8", "replace")), ("source_topic", topic.encode()),
            ("source_partition", str(partition).encode()), ("source_offset", str(offset).encode())]


_REASON_LABELS = (
    ("not signed", "unsigned"),
    ("signature does not match", "forged"),
    ("not valid JSON", "invalid_json"),
    ("over the limit", "oversized"),
    ("is required", "missing_field"),
    ("must be", "invalid_field"),
    ("longer than", "too_long"),
)


def reason_label(reason: str) -> str:
    """A few-valued label from a free-text reason (the full reason goes in the dead letter)."""
    for needle, label in _REASON_LABELS:
        if needle in reason:
            return label
    return "other"
