from __future__ import annotations

from collections import Counter

from tables.wire.records import EVENT_TYPES, parse_catalog, parse_event
from models.data.synthetic_shop import ShopConfig, SyntheticShop

NOW = 1_700_000_000.0


def shop(seed: int = 3) -> SyntheticShop:
    return SyntheticShop(ShopConfig(shoppers=2_000, items=1_000, seed=seed))


def test_same_seed_same_events_other_seed_other_events():
    a = list(shop().events(500, NOW - 60, 60))
    assert a == list(shop().events(500, NOW - 60, 60))
    assert a != list(shop(seed=4).events(500, NOW - 60, 60))


def test_events_and_catalog_are_valid_records_not_in_the_future():
    events = [parse_event(e, NOW, max_ts=NOW) for e in shop().events(2_000, NOW - 60, 60)]
    assert len(events) == 2_000 and len({e.event_id for e in events}) == 2_000
    assert {e.type for e in events} == set(EVENT_TYPES)
    assert all(NOW - 60 <= e.ts <= NOW for e in events)
    assert all(e.position is not None and e.request_id for e in events if e.type == "impression")
    changes = [parse_catalog(c, NOW, max_ts=NOW) for c in shop().catalog(NOW)]
    assert len(changes) == 1_000 and all(c.title and c.category and c.price is not None for c in changes)


def test_item_counts_are_zipf_skewed():
    counts = Counter(e["item_id"] for e in shop().events(20_000, NOW, 0) if "item_id" in e)
    top = sum(n for _, n in counts.most_common(10))
    # Uniform popularity would give the top 1% of items about 1% of the views (plus noise).
    assert top / sum(counts.values()) > 0.15


def test_next_items_follow_the_markov_chain():
    s = shop()
    events = [e for e in s.events(20_000, NOW, 0) if e["type"] == "view"]
    pairs = [(a["item_id"], b["item_id"]) for a, b in zip(events, events[1:]) if a["user_id"] == b["user_id"]]
    followed = sum(b in s.successors(a) for a, b in pairs)
    # Most moves go to one of an item's three successors; by popularity alone far fewer would.
    assert len(pairs) > 1_000 and followed / len(pairs) > 0.6
