"""The attack of issue 13: one event stamped 1e18 zeroed every popularity score and put a junk
item first for good. The gateway refuses it; and should such a stats record reach the read
model anyway (written before the bound), neither the clock nor the trending list follow it."""
import time

import orjson

from tables import item_stats


def stats_at(ts, purchases, settings):
    s = item_stats.empty()
    for k in range(purchases):
        s = item_stats.apply_event(s, "purchase", ts, 0, k, settings.features.popularity_half_life_s,
                                   settings.features.trending_half_life_s)
    return s


async def test_an_event_stamped_1e18_is_refused_and_as_of_ts_stays_near_now(client, sink, read_model, settings):
    now = time.time()
    read_model.apply(item_stats.NAME, "real", stats_at(now - 60, 3, settings))
    r = await client.post("/v1/events", data=orjson.dumps({"event_id": "x", "user_id": "u", "type": "purchase",
                                                           "item_id": "junk", "ts": 1e18}),
                          headers={"Content-Type": "application/json"})
    assert r.status == 400 and sink.events == []
    body = await (await client.get("/v1/items/popular?k=5")).json()
    assert abs(body["as_of_ts"] - now) < 120
    assert body["items"][0]["item_id"] == "real" and body["items"][0]["score"] > 20


async def test_a_future_stats_record_in_the_read_model_moves_neither_clock_nor_trending(client, read_model, settings):
    now = time.time()
    for item, n in (("a", 5), ("b", 3)):
        read_model.apply(item_stats.NAME, item, stats_at(now - 60, n, settings))
    read_model.apply(item_stats.NAME, "junk", stats_at(1e15, 1, settings))  # as before the bound
    assert read_model.clock <= time.time() + settings.limits.clock_skew_s
    body = await (await client.get("/v1/items/popular?k=3")).json()
    assert body["as_of_ts"] <= time.time() + settings.limits.clock_skew_s
    assert [i["item_id"] for i in body["items"]][:2] == ["a", "b"]
    assert body["items"][0]["score"] > 30  # 5 purchases a minute ago: not decayed to nothing
    rec = await (await client.get("/v1/recommend?user_id=new-shopper&k=2")).json()
    assert rec["strategy"] == "trending" and [i["item_id"] for i in rec["items"]] == ["a", "b"]
