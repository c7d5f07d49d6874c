"""Training samples derived from a user's events, for the online learner.

Two kinds, both carrying the source position (`src`: partition, offset) of the event that
produced them, so the learner can drop a sample it already learned from:

- `next`: the user's recent items (history, newest last) and the item that came next.
  Made when a sequence event appends an item that differs from the last one.
- `click`: an impression joined to what the user did with it. Each profile keeps its
  pending impressions (item, position, request id, time, query). A click on a pending item
  within `window_s` of its impression makes a positive sample (position kept) and removes
  it; an impression older than the window, or pushed out of the bounded list, makes a
  negative sample. So every impression becomes exactly one label.

Negatives for next-item learning are not made here: the learner draws them from its own
item rows (see models/online), which know which items exist.
"""
from __future__ import annotations

from typing import Any, Literal, TypedDict

from tables.wire.records import UserEvent

MAX_PENDING = 50  # impressions waiting for a click, per user
HISTORY = 20  # items of history shipped with a next-item sample
# A pending impression as the profile stores it (a JSON list, compact in the changelog):
# [item, position, request_id, ts, query].
Pending = list[Any]


class NextItemSample(TypedDict):
    """A `next` sample: the user's recent items and the item that came next."""

    kind: Literal["next"]
    user: str
    history: list[str]  # at most HISTORY items, newest last
    target: str
    ts: float  # the event's time (seconds)
    src: list[int]  # [partition, offset] of the event that made it


class ImpressionSample(TypedDict):
    """A `click` sample: one impression, labelled by whether the user clicked it in time."""

    kind: Literal["click"]
    user: str
    item: str
    position: int  # on the page it was shown in, 0 first
    label: int  # 1: clicked within the window; 0: not
    request_id: str | None
    query: str | None
    ts: float  # the impression's time (seconds)
    src: list[int]  # [partition, offset] of the event that closed it


Sample = NextItemSample | ImpressionSample


def next_item(history: list[str], event: UserEvent, src: list[int]) -> list[Sample]:
    """A next-item sample if `event` appends a new item after a non-empty history."""
    if event.item_id is None or not history or history[-1] == event.item_id:
        return []
    sample: NextItemSample = {"kind": "next", "user": event.user_id, "history": history[-HISTORY:],
                              "target": event.item_id, "ts": event.ts, "src": src}
    return [sample]


def join_impressions(pending: list[Pending], event: UserEvent, src: list[int],
                     window_s: float) -> tuple[list[Pending], list[Sample]]:
    """(new pending list, click samples) after `event`; `pending` is not changed."""
    samples: list[Sample] = []

    def sample(entry: Pending, label: int) -> ImpressionSample:
        item, position, request_id, ts, query = entry
        return {"kind": "click", "user": event.user_id, "item": item, "position": position, "label": label,
                "request_id": request_id, "query": query, "ts": ts, "src": src}

    kept: list[Pending] = []
    for entry in pending:
        _, _, _, shown_ts, _ = entry
        if event.ts - shown_ts > window_s:
            samples.append(sample(entry, 0))
        else:
            kept.append(entry)
    if event.type == "click" and event.item_id is not None:
        for i, (item, _, request_id, _, _) in enumerate(kept):
            same_request = event.request_id is None or event.request_id == request_id
            if item == event.item_id and same_request:
                samples.append(sample(kept.pop(i), 1))
                break
    elif event.type == "impression" and event.item_id is not None:
        kept.append([event.item_id, event.position if event.position is not None else 0,
                     event.request_id, event.ts, event.query])
        while len(kept) > MAX_PENDING:
            samples.append(sample(kept.pop(0), 0))
    return kept, samples
