import time

import orjson

JSON = {"Content-Type": "application/json"}  # what the gateway requires of every POST


def ev(i, **fields):
    base = {"event_id": f"e{i}", "user_id": "u1", "type": "view", "item_id": f"i{i}"}
    base.update(fields)
    return base


async def test_one_event_and_a_batch_are_accepted_and_produced(client, sink):
    r = await client.post("/v1/events", data=orjson.dumps(ev(1)), headers=JSON)
    assert r.status == 202 and (await r.json()) == {"accepted": 1}
    r = await client.post("/v1/events", data=orjson.dumps({"events": [ev(2), ev(3, type="click")]}), headers=JSON)
    assert r.status == 202
    assert [e.event_id for e in sink.events] == ["e1", "e2", "e3"]
    assert sink.events[2].type == "click"


async def test_a_batch_with_an_invalid_record_is_refused_whole_with_reasons(client, sink):
    r = await client.post("/v1/events", data=orjson.dumps([ev(1), ev(2, type="like"), ev(3, user_id=None)]),
                          headers=JSON)
    body = await r.json()
    assert r.status == 400 and sink.events == []
    assert [x["index"] for x in body["invalid"]] == [1, 2]
    assert "'type' must be one of" in body["invalid"][0]["reason"]
    assert "'user_id' is required" in body["invalid"][1]["reason"]


async def test_garbage_and_wrong_shapes_get_400(client):
    for data in (b"\x00garbage", b'{"event_id": "e1"', b"[]", b"42"):
        r = await client.post("/v1/events", data=data, headers=JSON)
        assert r.status == 400, data
        assert "error" in await r.json()


async def test_oversized_body_record_or_batch_get_413(client):
    big_body = orjson.dumps([ev(i, query="q" * 900) for i in range(40)])  # > 16 KiB
    assert (await client.post("/v1/events", data=big_body, headers=JSON)).status == 413
    big_record = await client.post("/v1/events", data=orjson.dumps(ev(1, query="q" * 1500)), headers=JSON)
    assert big_record.status == 400
    assert "over the limit" in (await big_record.json())["invalid"][0]["reason"]
    too_many = await client.post("/v1/events", data=orjson.dumps([ev(i) for i in range(51)]), headers=JSON)
    assert too_many.status == 413


async def test_catalog_changes_are_validated_and_produced(client, sink):
    r = await client.post("/v1/catalog", data=orjson.dumps([{"item_id": "i1", "title": "Drill"},
                                                            {"op": "delete", "item_id": "i2"}]), headers=JSON)
    assert r.status == 202 and [c.op for c in sink.catalog] == ["upsert", "delete"]
    r = await client.post("/v1/catalog", data=orjson.dumps({"item_id": "i3"}), headers=JSON)
    assert r.status == 400


async def post_json(client, path, obj):
    return await client.post(path, data=orjson.dumps(obj), headers={"Content-Type": "application/json"})


async def test_an_event_more_than_the_skew_ahead_of_the_gateways_clock_gets_400(client, sink, settings):
    now = time.time()
    ahead = [ev(1, ts=1e18), ev(2, ts=now + settings.limits.clock_skew_s + 60), ev(3, ts=(now + 3600) * 1000)]
    for record in ahead:
        r = await post_json(client, "/v1/events", record)
        body = await r.json()
        assert r.status == 400, record
        assert "'ts' must be at most" in body["invalid"][0]["reason"]
        assert "the receiver's clock plus the allowed skew" in body["invalid"][0]["reason"]
    r = await post_json(client, "/v1/events", [ev(4, ts=now + settings.limits.clock_skew_s - 60), ev(5, ts=now - 60)])
    assert r.status == 202 and [e.event_id for e in sink.events] == ["e4", "e5"]


async def test_a_pwned_catalog_upsert_with_a_future_ts_gets_400_and_the_right_one_is_taken(client, sink):
    r = await post_json(client, "/v1/catalog", {"item_id": "X1", "title": "pwned", "ts": 99999999999})
    assert r.status == 400 and sink.catalog == []
    assert "'ts' must be at most" in (await r.json())["invalid"][0]["reason"]
    r = await post_json(client, "/v1/catalog", {"item_id": "X1", "title": "Cordless drill"})
    assert r.status == 202 and [c.title for c in sink.catalog] == ["Cordless drill"]
    assert abs(sink.catalog[0].ts - time.time()) < 60  # a missing ts is the gateway's clock


async def test_unknown_keys_get_400_naming_the_allowed_ones(client, sink):
    r = await post_json(client, "/v1/events", ev(1, timestamp=1))
    assert r.status == 400 and sink.events == []
    assert "unknown key 'timestamp'" in (await r.json())["invalid"][0]["reason"]
