"""Campaign records: what is accepted, what is refused and why, and the targeting rules."""
import math

import orjson
import pytest

from models.ads.campaigns import Campaign
from models.errors import PayloadTooLarge, ValidationError
from tables.wire.records import MAX_ID_CHARS, MAX_TARGETS, decode_campaign, parse_campaign

GOOD = {"campaign_id": "c1", "item_id": "p1", "bid_per_click": 0.5, "daily_budget": 20}


def test_a_minimal_campaign_runs_forever_everywhere():
    c = parse_campaign(GOOD)
    assert c == Campaign("c1", "p1", 0.5, 20.0)
    assert c.is_running(0.0) and c.is_running(1e10) and c.targets("anything") and c.targets(None)


def test_a_full_campaign_round_trips_through_json():
    c = Campaign("c2", "p9", 1.25, 30.0, ("drill bit",), ("tools",), 100.0, 200.0)
    assert decode_campaign(c.to_json(), 10_000) == c
    assert decode_campaign(Campaign("c3", "p1", 1.0, 2.0).to_json(), 10_000).stop_ts == math.inf


def test_numeric_ids_are_strings_and_milliseconds_are_seconds():
    c = parse_campaign({**GOOD, "item_id": 12, "start_ts": 1_700_000_000_000})
    assert c.item_id == "12" and c.start_ts == 1_700_000_000.0


@pytest.mark.parametrize("change, field", [
    ({"campaign_id": None}, "campaign_id"),
    ({"campaign_id": ""}, "campaign_id"),
    ({"campaign_id": "x" * (MAX_ID_CHARS + 1)}, "campaign_id"),
    ({"item_id": None}, "item_id"),
    ({"item_id": ["p1"]}, "item_id"),
    ({"bid_per_click": None}, "bid_per_click"),
    ({"bid_per_click": 0}, "bid_per_click"),
    ({"bid_per_click": -1}, "bid_per_click"),
    ({"bid_per_click": "1"}, "bid_per_click"),
    ({"bid_per_click": True}, "bid_per_click"),
    ({"bid_per_click": 10 ** 400}, "bid_per_click"),
    ({"daily_budget": None}, "daily_budget"),
    ({"daily_budget": 0.0}, "daily_budget"),
    ({"daily_budget": "lots"}, "daily_budget"),
    ({"keywords": "drill"}, "keywords"),
    ({"keywords": [""]}, "keywords"),
    ({"keywords": [1]}, "keywords"),
    ({"keywords": ["k"] * (MAX_TARGETS + 1)}, "keywords"),
    ({"categories": [None]}, "categories"),
    ({"start_ts": -1}, "start_ts"),
    ({"start_ts": "today"}, "start_ts"),
    ({"stop_ts": -5}, "stop_ts"),
    ({"start_ts": 200, "stop_ts": 100}, "start_ts"),
    ({"start_ts": 100, "stop_ts": 100}, "start_ts"),
    ({"bid": 1.0}, "bid"),
])
def test_each_bad_field_is_refused_by_name(change, field):
    with pytest.raises(ValidationError, match=field):
        parse_campaign({**GOOD, **change})


def test_non_objects_oversized_and_undecodable_records_are_refused():
    with pytest.raises(ValidationError, match="campaign must be a JSON object"):
        parse_campaign([GOOD])
    with pytest.raises(PayloadTooLarge):
        decode_campaign(orjson.dumps(GOOD), 10)
    with pytest.raises(ValidationError, match="not valid JSON"):
        decode_campaign(b"{", 100)
    with pytest.raises(ValidationError, match="tombstone"):
        decode_campaign(None, 100)


def test_running_window_is_start_inclusive_stop_exclusive():
    c = Campaign("c", "p", 1.0, 1.0, start_ts=100.0, stop_ts=200.0)
    assert not c.is_running(99.9) and c.is_running(100.0) and c.is_running(199.9) and not c.is_running(200.0)


def test_keywords_match_whole_words_as_a_phrase():
    c = Campaign("c", "p", 1.0, 1.0, keywords=("drill bit", "saw"))
    assert c.targets("Cordless DRILL BIT set") and c.targets("circular saw")
    assert not c.targets("drills") and not c.targets("bit drill") and not c.targets("sawdust") and not c.targets(None)


def test_categories_must_meet_the_page_categories():
    c = Campaign("c", "p", 1.0, 1.0, categories=("Tools",))
    assert c.targets("any", ["tools", "garden"]) and not c.targets("any", ["garden"]) and not c.targets("any")
