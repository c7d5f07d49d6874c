import random

import orjson
import pytest

from models.errors import PayloadTooLarge, ValidationError
from tables.wire.records import ItemEvent, decode_catalog, decode_event, decode_item_event, parse_event

NOW = 1_700_000_000.0


def event(**fields):
    base = {"event_id": "e1", "user_id": "u1", "type": "click", "item_id": "i1"}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def test_valid_event_is_typed_and_keeps_its_fields():
    ev = parse_event(event(ts=NOW - 5, position=3, request_id="r9"), NOW)
    assert (ev.event_id, ev.user_id, ev.type, ev.item_id) == ("e1", "u1", "click", "i1")
    assert ev.ts == NOW - 5 and ev.position == 3 and ev.request_id == "r9"


def test_missing_ts_takes_now_and_milliseconds_are_converted():
    assert parse_event(event(), NOW).ts == NOW
    assert parse_event(event(ts=1_700_000_123_000), NOW).ts == 1_700_000_123.0


def test_numeric_ids_become_strings():
    ev = parse_event(event(user_id=42, item_id=7), NOW)
    assert (ev.user_id, ev.item_id) == ("42", "7")


def test_search_needs_a_query_but_no_item():
    ev = parse_event(event(type="search", item_id=None, query="red drill"), NOW)
    assert ev.query == "red drill" and ev.item_id is None
    with pytest.raises(ValidationError, match="'query' is required"):
        parse_event(event(type="search", item_id=None), NOW)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"type": "like"}, "'type' must be one of"),
        ({"event_id": None}, "'event_id' is required"),
        ({"user_id": ""}, "'user_id' must be a non-empty"),
        ({"user_id": True}, "'user_id' must be a non-empty"),
        ({"item_id": None}, "'item_id' is required"),
        ({"item_id": ["a"]}, "'item_id' must be"),
        ({"ts": "yesterday"}, "'ts' must be"),
        ({"ts": -1}, "'ts' must be"),
        ({"position": -2}, "'position' must be an integer"),
        ({"position": 1.5}, "'position' must be an integer"),
        ({"user_id": "x" * 300}, "longer than"),
    ],
)
def test_invalid_events_say_what_is_wrong(fields, reason):
    with pytest.raises(ValidationError, match=reason):
        parse_event(event(**fields), NOW)


def test_raw_bytes_garbage_truncated_and_oversized():
    with pytest.raises(ValidationError, match="not valid JSON"):
        decode_event(b"\x00\xffgarbage", 1000, NOW)
    with pytest.raises(ValidationError, match="not valid JSON"):
        decode_event(orjson.dumps(event())[:-3], 1000, NOW)
    with pytest.raises(ValidationError, match="must be a JSON object"):
        decode_event(b"[1, 2]", 1000, NOW)
    with pytest.raises(PayloadTooLarge, match="over the limit"):
        decode_event(orjson.dumps(event(query="q" * 2000)), 1000, NOW)


def test_event_json_round_trip():
    ev = parse_event(event(ts=NOW, position=1), NOW)
    assert decode_event(ev.to_json(), 1000, 0.0) == ev


def test_catalog_upsert_and_delete():
    up = decode_catalog(orjson.dumps({"item_id": "i1", "title": "Drill", "price": 9.5, "stock": 3,
                                      "attributes": {"brand": "Acme", "sizes": [1, 2]}}), 1000, NOW)
    assert (up.op, up.title, up.price, up.stock, up.attributes["brand"]) == ("upsert", "Drill", 9.5, 3, "Acme")
    gone = decode_catalog(b'{"op": "delete", "item_id": "i1"}', 1000, NOW)
    assert gone.op == "delete" and gone.title is None


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        ({"item_id": "i1"}, "'title' is required"),
        ({"item_id": "i1", "title": "x", "price": -1}, "'price' must be"),
        ({"item_id": "i1", "title": "x", "stock": "many"}, "'stock' must be"),
        ({"item_id": "i1", "title": "x", "attributes": {"a": {"nested": 1}}}, "attribute 'a'"),
        ({"op": "merge", "item_id": "i1"}, "'op' must be"),
    ],
)
def test_invalid_catalog_changes(obj, reason):
    with pytest.raises(ValidationError, match=reason):
        decode_catalog(orjson.dumps(obj), 1000, NOW)


def test_replay_job_parses_its_options():
    from app.cli import build_parser

    args = build_parser(["replay"]).parse_args(["replay", "--run-id", "demo-1", "--limit", "5"])
    assert args.run_id == "demo-1" and args.limit == 5 and callable(args.run)


MAX_TS = NOW + 300.0  # the receiver's clock plus the allowed skew


def test_a_ts_past_the_receivers_bound_is_refused_and_one_within_accepted():
    assert parse_event(event(ts=NOW + 299), NOW, MAX_TS).ts == NOW + 299
    for ts in (NOW + 301, 1e18, 99999999999, (NOW + 3600) * 1000):  # 1e18 and the last are ms
        with pytest.raises(ValidationError, match=r"'ts' must be at most 1700000300, the receiver's clock"):
            parse_event(event(ts=ts), NOW, MAX_TS)
        with pytest.raises(ValidationError, match="'ts' must be at most"):
            decode_catalog(orjson.dumps({"item_id": "X1", "title": "pwned", "ts": ts}), 1000, NOW, MAX_TS)


def test_a_missing_ts_is_filled_from_now_but_never_past_the_bound():
    # `now` may be a Kafka message timestamp, which a producer chose.
    assert parse_event(event(), NOW - 5, MAX_TS).ts == NOW - 5
    assert parse_event(event(), 1e15, MAX_TS).ts == MAX_TS


def test_a_ts_too_large_for_a_float_is_refused_not_raised():
    with pytest.raises(ValidationError, match="'ts' must be a non-negative number"):
        parse_event(event(ts=10**400), NOW, MAX_TS)


def test_unknown_keys_are_refused_with_the_allowed_ones():
    with pytest.raises(ValidationError, match=r"unknown key 'timestamp': an event's keys must be among "
                                              r"event_id, user_id, type, ts, item_id, query, position, request_id"):
        parse_event(event(timestamp=NOW), NOW)
    with pytest.raises(ValidationError, match=r"unknown key 'k0', 'k1', 'k2', 'k3', 'k4' and 2 more"):
        parse_event(event(**{f"k{i}": 1 for i in range(7)}), NOW)
    with pytest.raises(ValidationError, match="a catalog change's keys must be among op, item_id, ts, title"):
        decode_catalog(b'{"item_id": "i1", "title": "Drill", "colour": "red"}', 1000, NOW)


def test_the_projects_own_records_pass_the_key_check():
    ev = parse_event(event(ts=NOW, position=1, query="drill", request_id="r1"), NOW)
    assert decode_event(ev.to_json(), 1000, NOW, MAX_TS) == ev
    up = decode_catalog(orjson.dumps({"op": "upsert", "item_id": "i1", "title": "Drill", "category": "tools",
                                      "price": 1.0, "stock": 2, "attributes": {"a": 1}, "ts": NOW}), 1000, NOW)
    assert decode_catalog(up.to_json(), 1000, NOW, MAX_TS) == up


def test_a_tombstone_or_empty_value_is_not_json():
    for raw in (None, b""):
        with pytest.raises(ValidationError, match="not valid JSON"):
            decode_event(raw, 1000, NOW)
        with pytest.raises(ValidationError, match="not valid JSON"):
            decode_catalog(raw, 1000, NOW)


def test_item_event_round_trip_and_its_checks():
    fwd = ItemEvent("i1", "click", NOW, 3, 17)
    assert decode_item_event(b"i1", fwd.to_json(), 1000, MAX_TS) == fwd
    body = {"type": "view", "ts": NOW, "src": [0, 1]}
    cases = [
        (None, body, "the key must be the item id"),
        (b"\xff", body, "the key must be the item id"),
        (b" ", body, "the key must be the item id"),
        (b"i" * 300, body, "the key must be the item id"),
        (b"i1", [body], "must be a JSON object"),
        (b"i1", {**body, "type": None}, "'type' must be one of"),
        (b"i1", {**body, "ts": True}, "'ts' must be a non-negative number"),
        (b"i1", {**body, "ts": NOW + 301}, "'ts' must be at most"),
        (b"i1", {"type": "view", "src": [0, 1]}, "'ts' is required"),
        (b"i1", {**body, "src": [0, 1, 2]}, "'src' must be"),
        (b"i1", {**body, "src": [True, 1]}, "'src' must be"),
        (b"i1", {**body, "src": {"0": 1}}, "'src' must be"),
        (b"i1", {**body, "user": "u1"}, "unknown key 'user'"),
    ]
    for key, obj, reason in cases:
        with pytest.raises(ValidationError, match=reason):
            decode_item_event(key, orjson.dumps(obj), 1000, MAX_TS)


def test_no_bytes_raise_anything_but_a_validation_error():
    rng = random.Random(13)
    valid = orjson.dumps(event(ts=NOW))
    samples = [bytes(rng.randrange(256) for _ in range(rng.randrange(40))) for _ in range(300)]
    samples += [valid[:i] for i in range(len(valid))]  # every truncation
    samples += [orjson.dumps(v) for v in (None, True, 1e300, "x", [], {}, {"ts": {}}, {"type": []},
                                          {"event_id": {}, "user_id": 1, "type": "view", "item_id": []})]
    for raw in samples:
        for decode in (lambda r: decode_event(r, 1000, NOW, MAX_TS), lambda r: decode_catalog(r, 1000, NOW, MAX_TS),
                       lambda r: decode_item_event(r[:8] or None, r, 1000, MAX_TS)):
            with pytest.raises(ValidationError):
                decode(raw)


def test_a_click_carries_an_ad_token_and_other_types_refuse_one():
    ev = parse_event(event(ad_token="v1.aa.bb.1.2.3.mac"), NOW)
    assert ev.ad_token == "v1.aa.bb.1.2.3.mac"
    assert orjson.loads(ev.to_json())["ad_token"] == "v1.aa.bb.1.2.3.mac"
    assert "ad_token" not in orjson.loads(parse_event(event(), NOW).to_json())
    with pytest.raises(ValidationError, match="'ad_token' is accepted on clicks only"):
        parse_event(event(type="view", ad_token="v1.x"), NOW)
    for bad in ("", 7, "x" * 1201):
        with pytest.raises(ValidationError, match="'ad_token' must be a non-empty string"):
            parse_event(event(ad_token=bad), NOW)


def test_a_forward_carries_a_charge_as_a_sixth_element_and_old_entries_still_decode():
    from tables.wire.records import AdClick, decode_item_events, item_events_json

    charged = ItemEvent("i1", "click", NOW, 2, 9, AdClick("c1", 0.25, 3.0, "ab12"))
    raw = item_events_json([charged, ItemEvent("i2", "view", NOW, 2, 10)])
    assert orjson.loads(raw)["events"][0][5] == ["c1", 0.25, 3.0, "ab12"]
    assert decode_item_events(None, raw, 10_000, NOW + 1) == [charged, ItemEvent("i2", "view", NOW, 2, 10)]
    old = orjson.dumps({"events": [["i1", "click", NOW, 2, 9]]})
    assert decode_item_events(None, old, 10_000, NOW + 1) == [ItemEvent("i1", "click", NOW, 2, 9)]
    # A charge forwarded before tokens were charged once has no token id: charged per click.
    untokened = orjson.dumps({"events": [["i1", "click", NOW, 2, 9, ["c1", 0.25, 3.0]]]})
    assert decode_item_events(None, untokened, 10_000, NOW + 1)[0].charge == AdClick("c1", 0.25, 3.0, "")
    bad = {"view": ["i1", "view", NOW, 2, 9, ["c1", 0.25, 3.0, "ab12"]],
           "shape": ["i1", "click", NOW, 2, 9, ["c1", -1, 3.0, "ab12"]],
           "budget": ["i1", "click", NOW, 2, 9, ["c1", 0.2, 0, "ab12"]],
           "token": ["i1", "click", NOW, 2, 9, ["c1", 0.2, 1.0, 7]]}
    for what, entry in bad.items():
        with pytest.raises(ValidationError, match="only a click carries" if what == "view" else "the charge must be"):
            decode_item_events(None, orjson.dumps({"events": [entry]}), 10_000, NOW + 1)
