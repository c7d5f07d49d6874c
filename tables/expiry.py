"""Rows that matter only for a while: stamped when written, dropped once older than their table keeps them.

`seen_events` rows refuse a reused event id for a window (`STREAMRANK_WORKER_DEDUP_WINDOW_S`);
`ad_tokens_charged` rows refuse a charged token for as long as it could still be charged
(`charged_tokens.KEEP_S`). Unstamped, both grew by a row per event or charged click for as
long as the shop ran, in RocksDB and in the compacted changelog alike.

A row is [partition, offset, written at]: the position that wrote it and the worker's clock
then (whole seconds). The clock, not the event's ts: a shop or a bot sets that, and a
backdated click would otherwise drop its own token's row at once and be charged again.
Rows written before the stamp (two fields) are stamped when a sweep first finds them.
"""
from __future__ import annotations

from typing import Any, Literal

Verdict = Literal["keep", "drop", "stamp"]


def stamped(partition: int, offset: int, now: float) -> list[int]:
    return [partition, offset, int(now)]


def verdict(row: Any, now: float, keep_s: float) -> Verdict:
    """What a sweep does with a row at `now`: keep it, drop it (older than `keep_s`), or stamp it
    (written before stamps: it is kept `keep_s` from now). A row of another shape is kept."""
    if not isinstance(row, list) or len(row) < 2:
        return "keep"
    if len(row) == 2:
        return "stamp"
    written = row[2]
    return "drop" if isinstance(written, int) and now - written > keep_s else "keep"
