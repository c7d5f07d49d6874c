import orjson
import pytest

from models.errors import PayloadTooLarge, ValidationError
from app.records import decode_catalog, decode_event, parse_event

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
