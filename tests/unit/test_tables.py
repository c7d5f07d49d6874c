import math

import pytest

from tables.wire.records import UserEvent
from models.errors import ValidationError
from models.decay import add_decayed, decayed
from tables import catalog, item_stats, samples, seen_events, user_profiles
from tables.wire.records import CatalogChange

DAY = 86400.0


def ev(k, etype="view", item="i1", ts=1000.0, query=None):
    return UserEvent(event_id=f"e{k}", user_id="u1", type=etype, ts=ts, item_id=item, query=query)


def test_profile_counts_recent_items_and_does_not_mutate_input():
    p0 = user_profiles.empty()
    p1 = user_profiles.apply_event(p0, ev(1, "view", "a"), 0, 10, recent_items=2)
    p2 = user_profiles.apply_event(p1, ev(2, "purchase", "b"), 0, 11, recent_items=2)
    p3 = user_profiles.apply_event(p2, ev(3, "view", "c"), 0, 12, recent_items=2)
    assert p0 == user_profiles.empty() and p1["recent"] == ["a"]
    assert p3["counts"] == {"view": 2, "purchase": 1}
    assert p3["recent"] == ["b", "c"]


def test_impressions_count_but_do_not_enter_the_sequence_and_queries_are_kept():
    p = user_profiles.apply_event(user_profiles.empty(), ev(1, "impression", "a"), 0, 1, 5)
    p = user_profiles.apply_event(p, ev(2, "search", None, query="drill"), 0, 2, 5)
    assert p["recent"] == [] and p["queries"] == ["drill"]
    assert p["counts"] == {"impression": 1, "search": 1}


def test_offset_guard_recognises_redelivery_per_partition():
    p = user_profiles.apply_event(user_profiles.empty(), ev(1), 3, 100, 5)
    assert user_profiles.already_applied(p, 3, 100)
    assert user_profiles.already_applied(p, 3, 99)
    assert not user_profiles.already_applied(p, 3, 101)
    assert not user_profiles.already_applied(p, 1, 5)


def test_duplicate_event_id_is_told_from_a_redelivery():
    assert not seen_events.is_duplicate(None, 0, 5)
    assert not seen_events.is_duplicate([0, 5], 0, 5)
    assert seen_events.is_duplicate([0, 5], 0, 9)


def test_decay_halves_over_one_half_life_and_late_events_land_in_the_past():
    assert math.isclose(decayed(8.0, 0.0, DAY, DAY), 4.0)
    in_order = add_decayed(*add_decayed(0.0, 0.0, 1.0, 0.0, DAY), 1.0, DAY, DAY)
    late = add_decayed(*add_decayed(0.0, 0.0, 1.0, DAY, DAY), 1.0, 0.0, DAY)
    assert math.isclose(in_order[0], late[0]) and in_order[1] == late[1] == DAY


def test_item_stats_counts_popularity_trend_and_ctr():
    s = item_stats.empty()
    s = item_stats.apply_event(s, "impression", 0.0, 0, 1, DAY, DAY / 4)
    s = item_stats.apply_event(s, "impression", 0.0, 0, 2, DAY, DAY / 4)
    s = item_stats.apply_event(s, "click", 0.0, 0, 3, DAY, DAY / 4)
    assert s["counts"] == {"impression": 2, "click": 1}
    assert item_stats.ctr(s) == 0.5
    assert math.isclose(item_stats.popularity_at(s, DAY, DAY), 1.0)  # click weight 2, halved
    assert item_stats.already_applied(s, 0, 3) and not item_stats.already_applied(s, 1, 3)
    assert item_stats.trending_at(s, DAY, DAY, DAY / 4) < 1.0  # interest is fading


def test_catalog_keeps_newest_and_tombstones_deletes():
    up = CatalogChange(op="upsert", item_id="i", ts=10.0, title="Drill")
    old = CatalogChange(op="upsert", item_id="i", ts=5.0, title="Old drill")
    gone = CatalogChange(op="delete", item_id="i", ts=20.0)
    item = catalog.to_item(up)
    assert catalog.is_live(item) and catalog.is_stale(item, old)
    tomb = catalog.to_item(gone)
    assert not catalog.is_live(tomb) and catalog.is_stale(tomb, up)


def test_purchases_are_remembered_once_for_exclusion():
    p = user_profiles.empty()
    for k, (t, item) in enumerate([("purchase", "a"), ("view", "b"), ("purchase", "a"), ("purchase", "c")]):
        p = user_profiles.apply_event(p, ev(k, t, item), 0, k, 10)
    assert p["purchased"] == ["a", "c"]


def test_appended_items_between_profile_versions():
    p0 = user_profiles.apply_event(user_profiles.empty(), ev(1, "view", "a"), 0, 1, 3)
    p1 = user_profiles.apply_event(p0, ev(2, "click", "b"), 0, 2, 3)
    p2 = user_profiles.apply_event(p1, ev(3, "impression", "z"), 0, 3, 3)
    p3 = user_profiles.apply_event(user_profiles.apply_event(p2, ev(4, "view", "c"), 0, 4, 3), ev(5, "view", "d"), 0, 5, 3)
    assert user_profiles.appended_items(None, p0) == (None, ["a"])
    assert user_profiles.appended_items(p0, p1) == ("a", ["b"])
    assert user_profiles.appended_items(p1, p2) == (None, [])
    assert user_profiles.appended_items(p2, p3) == ("b", ["c", "d"])  # a skipped version


NOW = 1_700_000_000.0
MAX_TS = NOW + 300.0
FAR = 1e15  # a ts accepted before event times were bounded


def test_item_stats_stored_far_in_the_future_start_their_sums_again():
    frozen = item_stats.apply_event(item_stats.empty(), "purchase", FAR, 0, 1, DAY, DAY / 4)
    # Without the bound a valid event adds nothing: it is decayed by the distance to 1e15.
    stuck = item_stats.apply_event(frozen, "view", NOW, 0, 2, DAY, DAY / 4)
    assert stuck["pop"] == 8.0 and stuck["ts"] == FAR
    s = item_stats.apply_event(frozen, "view", NOW, 0, 2, DAY, DAY / 4, max_ts=MAX_TS)
    assert (s["pop"], s["trend"], s["ts"]) == (1.0, 1.0, NOW)
    assert s["counts"] == {"purchase": 1, "view": 1} and s["src"] == {"0": 2}
    # stats within the bound are untouched by it
    ok = item_stats.apply_event(item_stats.empty(), "view", NOW, 0, 1, DAY, DAY / 4)
    assert item_stats.apply_event(ok, "view", NOW, 0, 2, DAY, DAY / 4, max_ts=MAX_TS)["pop"] == 2.0


def test_popularity_key_counts_a_future_ts_as_the_bound():
    junk = item_stats.apply_event(item_stats.empty(), "view", FAR, 0, 1, DAY, DAY / 4)
    real = item_stats.empty()
    for k in range(5):
        real = item_stats.apply_event(real, "purchase", NOW, 0, k, DAY, DAY / 4)
    assert item_stats.popularity_key(junk, DAY) > item_stats.popularity_key(real, DAY)
    assert item_stats.popularity_key(junk, DAY, MAX_TS) < item_stats.popularity_key(real, DAY, MAX_TS)


def test_a_catalog_entry_stored_past_the_bound_loses_to_a_valid_change():
    pwned = catalog.to_item(CatalogChange(op="upsert", item_id="X1", ts=99999999999.0, title="pwned"))
    fix = CatalogChange(op="upsert", item_id="X1", ts=NOW, title="Drill")
    assert catalog.is_stale(pwned, fix)  # ordered by ts alone, the pwned entry wins for good
    assert not catalog.is_stale(pwned, fix, MAX_TS)
    newer = catalog.to_item(CatalogChange(op="upsert", item_id="X1", ts=NOW + 10, title="New"))
    assert catalog.is_stale(newer, fix, MAX_TS)  # ordering within the bound is unchanged


def test_table_values_are_checked_for_the_shape_their_module_writes():
    profile = user_profiles.apply_event(user_profiles.empty(), ev(1, "purchase", "a"), 0, 1, 5)
    stats = item_stats.apply_event(item_stats.empty(), "view", NOW, 0, 1, DAY, DAY / 4)
    up = catalog.to_item(CatalogChange(op="upsert", item_id="i", ts=NOW, title="Drill", price=2.0, stock=1,
                                       attributes={"a": [1]}))
    for validate, good in ((user_profiles.validate, profile), (user_profiles.validate, user_profiles.empty()),
                           (item_stats.validate, stats), (item_stats.validate, item_stats.empty()),
                           (catalog.validate, up), (catalog.validate, catalog.to_item(CatalogChange("delete", "i", NOW)))):
        validate(good)
    bad = [
        (user_profiles.validate, [], "a user_profiles value must be an object"),
        (user_profiles.validate, {**profile, "recent": "a"}, "'recent' is a list of strings"),
        (user_profiles.validate, {**profile, "counts": {"view": "1"}}, "'counts' maps event types to counts"),
        (user_profiles.validate, {**profile, "ts": None}, "'ts' is a number"),
        (item_stats.validate, 5, "an object"),
        (item_stats.validate, {**stats, "pop": "hot"}, "'pop' is a number >= 0"),
        (item_stats.validate, {k: v for k, v in stats.items() if k != "ts"}, "'ts' is a number >= 0"),
        (item_stats.validate, {**stats, "src": {"0": -1}}, "'src' maps partitions to offsets"),
        (catalog.validate, "Drill", "an object"),
        (catalog.validate, {**up, "ts": "now"}, "'ts' is a number >= 0"),
        (catalog.validate, {**up, "price": "cheap"}, "'price' is a number or null"),
        (catalog.validate, {**up, "stock": 1.5}, "'stock' is an integer or null"),
        (catalog.validate, {**up, "title": ["x"]}, "'title' is a string or null"),
        (catalog.validate, {"deleted": "yes", "ts": 1.0}, "'deleted' is a boolean"),
    ]
    for validate, value, reason in bad:
        with pytest.raises(ValidationError, match=reason):
            validate(value)


def test_samples_and_catalog_items_have_the_keys_their_typeddicts_declare():
    """The learner and the gateway read these values by key: what the code writes is the type."""
    history = ["a", "b"]
    made = samples.next_item(history, ev(1, "view", "c"), [0, 7])
    pending, clicks = samples.join_impressions([], UserEvent("e2", "u1", "impression", 1000.0, "d", "drill", 2, "r1"), [0, 8], 60.0)
    _, clicks = samples.join_impressions(pending, UserEvent("e3", "u1", "click", 1010.0, "d", request_id="r1"), [0, 9], 60.0)
    _, expired = samples.join_impressions(pending, ev(4, ts=2000.0), [0, 10], 60.0)
    assert [s["kind"] for s in made + clicks + expired] == ["next", "click", "click"]
    assert set(made[0]) == set(samples.NextItemSample.__annotations__)
    assert clicks[0]["label"] == 1 and expired[0]["label"] == 0 and clicks[0]["position"] == 2
    assert set(clicks[0]) == set(expired[0]) == set(samples.ImpressionSample.__annotations__)
    up = catalog.to_item(CatalogChange(op="upsert", item_id="i", ts=NOW, title="Drill"))
    assert set(up) == set(catalog.Item.__annotations__) - {"deleted"}  # (NotRequired is not seen at run time)
    assert set(catalog.to_item(CatalogChange("delete", "i", NOW))) == {"deleted", "ts"}
