"""What the tables must hold after a replay, computed straight from the data file."""
from __future__ import annotations

from collections import Counter, defaultdict
from typing import Iterable

from app.records import UserEvent


def expected_state(events: Iterable[UserEvent], recent_items: int) -> tuple[dict, dict]:
    users: dict[str, Counter] = defaultdict(Counter)
    recent: dict[str, list[str]] = defaultdict(list)
    items: dict[str, Counter] = defaultdict(Counter)
    for e in events:
        users[e.user_id][e.type] += 1
        if e.item_id is not None:
            items[e.item_id][e.type] += 1
            recent[e.user_id].append(e.item_id)
    user_view = {u: {"counts": dict(c), "recent_items": recent[u][-recent_items:]} for u, c in users.items()}
    return user_view, {i: dict(c) for i, c in items.items()}
