"""User profiles, keyed by user id: recent items, counts per event type, recent queries.

A profile stores, per source partition, the offset of the last event applied to it, so an
event redelivered after a crash (at-least-once) is recognised and not counted twice.
"""
from __future__ import annotations

from typing import Any

from app.records import UserEvent

NAME = "user_profiles"
MAX_QUERIES = 10
Profile = dict[str, Any]


def empty() -> Profile:
    return {"counts": {}, "recent": [], "queries": [], "ts": 0.0, "src": {}}


def already_applied(profile: Profile, partition: int, offset: int) -> bool:
    last = profile["src"].get(str(partition))
    return last is not None and offset <= last


def apply_event(profile: Profile, event: UserEvent, partition: int, offset: int, recent_items: int) -> Profile:
    """A new profile with `event` applied; the input is not changed."""
    counts = dict(profile["counts"])
    counts[event.type] = counts.get(event.type, 0) + 1
    recent = list(profile["recent"])
    if event.item_id is not None and event.type != "impression":
        recent.append(event.item_id)
        del recent[:-recent_items]
    queries = list(profile["queries"])
    if event.query:
        queries.append(event.query)
        del queries[:-MAX_QUERIES]
    return {
        "counts": counts,
        "recent": recent,
        "queries": queries,
        "ts": max(profile["ts"], event.ts),
        "src": {**profile["src"], str(partition): offset},
    }


def public_view(user_id: str, profile: Profile) -> dict[str, Any]:
    """What the API shows of a profile (bookkeeping fields left out)."""
    return {
        "user_id": user_id,
        "counts": profile["counts"],
        "recent_items": profile["recent"],
        "recent_queries": profile["queries"],
        "last_event_ts": profile["ts"],
    }
