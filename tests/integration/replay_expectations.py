"""What the tables must hold after a replay, computed straight from the data file."""
from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from typing import Iterable

from tables.wire.records import UserEvent


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


def beauty_events(settings, n: int) -> list[UserEvent]:
    """The first n events of the Amazon Beauty replay, in file order."""
    from app.replay_data import read_sequences, sequence_events

    sequences = read_sequences(settings.runtime.data_dir / "amazon-beauty" / "Beauty.txt")
    return list(itertools.islice(sequence_events(sequences), n))


async def gateway_mismatches(session, users: dict, items: dict) -> tuple[dict, dict]:
    """What a gateway answers for each user and item that differs from `expected_state`'s view.
    `session` gets relative paths: an aiohttp test client, or a ClientSession with a base_url."""
    bad_users = {}
    for user_id, want in users.items():
        async with session.get(f"/v1/users/{user_id}") as r:
            got = await r.json() if r.status == 200 else None
        if got is None or got["counts"] != want["counts"] or got["recent_items"] != want["recent_items"]:
            bad_users[user_id] = (want, got)
    bad_items = {}
    for item_id, want in items.items():
        async with session.get(f"/v1/items/{item_id}") as r:
            got = (await r.json())["stats"]["counts"] if r.status == 200 else None
        if got != want:
            bad_items[item_id] = (want, got)
    return bad_users, bad_items
