"""The gateway holds profiles compactly (app/gateway/profiles.py) and answers as from the dicts."""
import gc

import orjson
import pytest

from app.gateway.profiles import ServedProfile, held_bytes, pack, unpack
from app.gateway.read_model import ReadModel
from app.settings import Settings
from tables import user_profiles
from tables.wire.records import EVENT_TYPES, UserEvent


def profile_after(events: list[tuple[str, str | None, str | None]], user: str = "u1") -> dict:
    profile = user_profiles.empty()
    for offset, (etype, item, query) in enumerate(events):
        event = UserEvent(event_id=f"e{offset}", user_id=user, type=etype, item_id=item, query=query, ts=100.0 + offset)
        profile = user_profiles.apply_event(profile, event, 0, offset, recent_items=3)
    return profile


EVENTS = [("view", "i1", None), ("search", None, "drill"), ("click", "i2", None), ("purchase", "i2", None),
          ("impression", "i9", None), ("view", "i3", None), ("view", "i4", None)]


def test_the_read_model_keeps_served_fields_and_answers_as_the_dict_would():
    model = ReadModel(Settings())
    value = orjson.loads(orjson.dumps(profile_after(EVENTS)))  # as the changelog decodes it
    model.apply(user_profiles.NAME, "u1", value)
    record = model.tables[user_profiles.NAME]["u1"]
    # One bytes object: the cyclic GC never tracks it, so a million shoppers add nothing to a
    # full collection's walk.
    assert type(record) is bytes
    assert not gc.is_tracked(record)
    held = ServedProfile(record)
    # The same JSON (tuples serialise as lists).
    as_json = lambda view: orjson.loads(orjson.dumps(view))  # noqa: E731
    assert as_json(model.user("u1")) == as_json(user_profiles.public_view("u1", value))
    assert list(model.user("u1")["recent_items"]) == ["i2", "i3", "i4"] == value["recent"]
    assert held["counts"] == {"view": 3, "search": 1, "click": 1, "purchase": 1, "impression": 1}
    assert user_profiles.sequence_length(held) == user_profiles.sequence_length(value) == 5
    assert held.get("pending", "absent") == "absent"
    with pytest.raises(KeyError):
        held["pending"]


def test_a_profile_is_held_in_about_half_the_bytes_of_the_tuple_form_and_read_the_same():
    value = orjson.loads(orjson.dumps(profile_after(EVENTS + [("view", f"item-{i:06d}", None) for i in range(20)])))
    record = pack(value)
    as_tuple = (tuple(value["recent"]), tuple(value["purchased"]), tuple(value["queries"]), float(value["ts"]),
                tuple(value["counts"].get(t, 0) for t in EVENT_TYPES))
    assert unpack(record) == as_tuple
    assert ServedProfile(record).counts == ServedProfile(as_tuple).counts == value["counts"]
    assert held_bytes("u1", record) < 0.6 * held_bytes("u1", as_tuple)


@pytest.mark.parametrize("odd", [
    {"recent": ["i1", "i\x002"]},  # a NUL would end the string early in the bytes form
    {"queries": ["drill\x00bits"]},
    {"counts": {"view": 2**32}},  # past a uint32
])
def test_a_profile_the_bytes_cannot_hold_exactly_is_held_as_tuples_and_read_the_same(odd):
    value = {**orjson.loads(orjson.dumps(profile_after(EVENTS))), **odd}
    model = ReadModel(Settings())
    model.apply(user_profiles.NAME, "u1", value)
    record = model.tables[user_profiles.NAME]["u1"]
    assert type(record) is tuple
    held = model.profile("u1")
    assert (list(held["recent"]), list(held["queries"]), held["counts"]) == (
        value["recent"], value["queries"], {t: n for t, n in value["counts"].items() if n})
    assert model.profile_bytes == held_bytes("u1", record)


def test_appended_items_reads_served_profiles_as_it_reads_dicts():
    old, new = profile_after(EVENTS[:3]), profile_after(EVENTS)
    served_old, served_new = ServedProfile(pack(old)), ServedProfile(pack(new))
    before, items = user_profiles.appended_items(served_old, served_new)
    assert (before, list(items)) == user_profiles.appended_items(old, new) == ("i2", ["i2", "i3", "i4"])


def test_the_read_model_counts_the_bytes_its_shoppers_hold_as_the_allocator_sees_them():
    """`profile_bytes` follows every change (new, replaced, deleted shopper) and is what the
    allocator keeps for the profiles: within a fifth of tracemalloc's count for 20,000 shoppers,
    decoded and applied while it traces (the decoded dicts are dropped as the changelog's are)."""
    import tracemalloc

    items = [f"item-{i}" for i in range(500)]
    payloads = [(f"shopper-{u}".encode(), orjson.dumps(profile_after(
        [("view", items[(u * 7 + j) % 500], None) for j in range(1 + u % 9)] + [("purchase", items[u % 500], None)] * (u % 2),
        f"shopper-{u}"))) for u in range(20_000)]
    model = ReadModel(Settings())
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for key, value in payloads:
            model.apply(user_profiles.NAME, key.decode(), orjson.loads(value))
        allocated = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    rows = model.tables[user_profiles.NAME]
    assert model.profile_bytes == sum(held_bytes(k, r) for k, r in rows.items())
    assert 0.8 < model.profile_bytes / allocated < 1.2, (model.profile_bytes, allocated)
    model.apply(user_profiles.NAME, "shopper-1", orjson.loads(payloads[8][1]))  # replaced by a longer profile
    model.apply(user_profiles.NAME, "shopper-3", None)  # deleted
    assert model.profile_bytes == sum(held_bytes(k, r) for k, r in rows.items())
    for key, _ in payloads:
        model.apply(user_profiles.NAME, key.decode(), None)
    assert model.profile_bytes == 0


def test_a_shoppers_queries_are_counted_in_what_it_holds():
    plain = pack(orjson.loads(orjson.dumps(profile_after(EVENTS[:1]))))
    searched = pack(orjson.loads(orjson.dumps(profile_after([EVENTS[0], ("search", None, "cordless drill 18v")]))))
    assert held_bytes("u1", searched) - held_bytes("u1", plain) >= len("cordless drill 18v") + 1  # and its NUL
