"""User profiles, keyed by user id: recent items, counts per event type, recent queries.

A profile stores, per source partition, the offset of the last event applied to it, so an
event redelivered after a crash (at-least-once) is recognised and not counted twice.
"""
from __future__ import annotations

from typing import Any, NotRequired, TypedDict

from tables.wire.records import UserEvent
from tables import samples as sampling
from tables.shapes import is_counts, is_number, is_str_list, require

NAME = "user_profiles"
MAX_QUERIES = 10
MAX_PURCHASED = 100
# Event types that put an item into the user's sequence (impressions are only shown items).
SEQUENCE_TYPES = ("view", "click", "add_to_cart", "purchase")


class Profile(TypedDict):
    """A user_profiles value (the changelog's JSON object)."""

    counts: dict[str, int]  # events per type
    recent: list[str]  # the sequence's last items, oldest first
    purchased: NotRequired[list[str]]
    queries: list[str]  # the last searches
    ts: float  # newest event time applied (seconds)
    src: dict[str, int]  # source partition (as text) -> offset of the last event applied
    pending: NotRequired[list[Any]]  # impressions waiting for a click (tables/samples.py)



def empty() -> Profile:
    return {"counts": {}, "recent": [], "purchased": [], "queries": [], "ts": 0.0, "src": {}}


def already_applied(profile: Profile, partition: int, offset: int) -> bool:
    last = profile["src"].get(str(partition))
    return last is not None and offset <= last


def apply_event(profile: Profile, event: UserEvent, partition: int, offset: int, recent_items: int) -> Profile:
    """A new profile with `event` applied; the input is not changed."""
    counts = dict(profile["counts"])
    counts[event.type] = counts.get(event.type, 0) + 1
    recent = list(profile["recent"])
    if event.item_id is not None and event.type in SEQUENCE_TYPES:
        recent.append(event.item_id)
        del recent[:-recent_items]
    purchased = list(profile.get("purchased", ()))
    if event.type == "purchase" and event.item_id is not None and event.item_id not in purchased:
        purchased.append(event.item_id)
        del purchased[:-MAX_PURCHASED]
    queries = list(profile["queries"])
    if event.query:
        queries.append(event.query)
        del queries[:-MAX_QUERIES]
    return {
        "counts": counts,
        "recent": recent,
        "purchased": purchased,
        "queries": queries,
        "ts": max(profile["ts"], event.ts),
        "src": {**profile["src"], str(partition): offset},
        "pending": profile.get("pending", []),
    }


def apply_event_and_sample(profile: Profile, event: UserEvent, partition: int, offset: int, recent_items: int,
                           impression_window_s: float) -> tuple[Profile, list[sampling.Sample]]:
    """`apply_event`, plus the training samples the event makes (see tables/samples.py)."""
    new = apply_event(profile, event, partition, offset, recent_items)
    src = [partition, offset]
    made = sampling.next_item(profile["recent"], event, src) if event.type in SEQUENCE_TYPES else []
    new["pending"], clicks = sampling.join_impressions(profile.get("pending", []), event, src, impression_window_s)
    return new, made + clicks


def sequence_length(profile: Profile) -> int:
    return sum(profile["counts"].get(t, 0) for t in SEQUENCE_TYPES)


def appended_items(old: Profile | None, new: Profile) -> tuple[str | None, list[str]]:
    """Items added to the sequence between two versions of a profile, and the item before them.

    Changelogs may skip versions (compaction), so this is the difference in sequence length,
    read off the end of the new recent list (at most its length).
    """
    n = sequence_length(new) - (sequence_length(old) if old else 0)
    recent = new["recent"]
    n = min(max(n, 0), len(recent))
    if n == 0:
        return None, []
    before = recent[-n - 1] if len(recent) > n else (old["recent"][-1] if old and old["recent"] else None)
    return before, recent[len(recent) - n:]


def public_view(user_id: str, profile: Profile) -> dict[str, Any]:
    """What the API shows of a profile (bookkeeping fields left out)."""
    return {
        "user_id": user_id,
        "counts": profile["counts"],
        "recent_items": profile["recent"],
        "purchased_items": profile.get("purchased", []),
        "recent_queries": profile["queries"],
        "last_event_ts": profile["ts"],
    }


def validate(value: Any) -> None:
    """Refuse a changelog value that is not a profile (ValidationError says what is wrong)."""
    require(isinstance(value, dict), NAME, "an object")
    require(is_counts(value.get("counts")), NAME, "an object whose 'counts' maps event types to counts")
    for key in ("recent", "queries"):
        require(is_str_list(value.get(key)), NAME, f"an object whose '{key}' is a list of strings")
    require(is_str_list(value.get("purchased", [])), NAME, "an object whose 'purchased' is a list of strings")
    require(is_number(value.get("ts")), NAME, "an object whose 'ts' is a number")
    require(is_counts(value.get("src")), NAME, "an object whose 'src' maps partitions to offsets")
    require(isinstance(value.get("pending", []), list), NAME, "an object whose 'pending' is a list")
