"""Event ids already taken, keyed by event id, valued by the (partition, offset) that carried it
and when (tables/expiry.py).

The position tells a redelivery of the same message (same position: process again, the
profile's offset guard decides) from a second message with a reused id (a duplicate: drop).
A row is kept for the worker's dedup window (`STREAMRANK_WORKER_DEDUP_WINDOW_S`): an id
reused after it is taken again.
"""
from __future__ import annotations

NAME = "seen_events"


def is_duplicate(seen: list[int] | None, partition: int, offset: int) -> bool:
    return seen is not None and (seen[0], seen[1]) != (partition, offset)
