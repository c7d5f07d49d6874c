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

from typing import Any

from tables.wire.records import UserEvent

Sample = dict[str, Any]
MAX_PENDING = 50  # impressions waiting for a click, per user
HISTORY = 20  # items of history shipped with a next-item sample


def next_item(history: list[str], event: UserEvent, src: list[int]) -> list[Sample]:
    """A next-item sample if `event` appends a new item after a non-empty history."""
    if event.item_id is None or not history or history[-1] == event.item_id:
        return []
    return [{"kind": "next", "user": event.user_id, "history": history[-HISTORY:], "target": event.item_id,
             "ts": event.ts, "src": src}]


def join_impressions(pending: list[list[Any]], event: UserEvent, src: list[int],
                     window_s: float) -> tuple[list[list[Any]], list[Sample]]:
    """(new pending list, click samples) after `event`; `pending` is not changed.

    Pending entries are [item, position, request_id, ts, query].
    """
    samples: list[Sample] = []

    def sample(entry: list[Any], label: int) -> Sample:
        item, position, request_id, ts, query = entry
        return {"kind": "click", "user": event.user_id, "item": item, "position": position, "label": label,
                "request_id": request_id, "query": query, "ts": ts, "src": src}

    kept: list[list[Any]] = []
    for entry in pending:
        if event.ts - entry[3] > window_s:
            samples.append(sample(entry, 0))
        else:
            kept.append(entry)
    if event.type == "click" and event.item_id is not None:
        for i, entry in enumerate(kept):
            same_request = event.request_id is None or event.request_id == entry[2]
            if entry[0] == event.item_id and same_request:
                samples.append(sample(kept.pop(i), 1))
                break
    elif event.type == "impression" and event.item_id is not None:
        kept.append([event.item_id, event.position if event.position is not None else 0,
                     event.request_id, event.ts, event.query])
        while len(kept) > MAX_PENDING:
            samples.append(sample(kept.pop(0), 0))
    return kept, samples
