from tables import catalog, item_stats, user_profiles
from tables.wire.records import CatalogChange, UserEvent


def fill(read_model):
    p = user_profiles.empty()
    for k, item in enumerate(["a", "b"]):
        p = user_profiles.apply_event(p, UserEvent(f"e{k}", "u1", "view", 10.0 + k, item), 0, k, 50)
    read_model.apply(user_profiles.NAME, "u1", p)
    for item, n in (("a", 1), ("b", 3), ("c", 2)):
        s = item_stats.empty()
        for k in range(n):
            s = item_stats.apply_event(s, "view", 10.0, 0, k, 86400.0, 3600.0)
        read_model.apply(item_stats.NAME, item, s)
    read_model.apply(catalog.NAME, "b", catalog.to_item(CatalogChange("upsert", "b", 1.0, title="Drill")))
    read_model.apply(catalog.NAME, "c", catalog.to_item(CatalogChange("delete", "c", 2.0)))


async def test_user_profile_from_memory(client, read_model):
    fill(read_model)
    r = await client.get("/v1/users/u1")
    body = await r.json()
    assert r.status == 200 and body["counts"] == {"view": 2} and body["recent_items"] == ["a", "b"]
    r = await client.get("/v1/users/nobody")
    assert r.status == 404 and "nobody" in (await r.json())["error"]


async def test_item_view_joins_stats_and_catalog(client, read_model):
    fill(read_model)
    body = await (await client.get("/v1/items/b")).json()
    assert body["catalog"]["title"] == "Drill" and body["stats"]["counts"] == {"view": 3}
    assert (await client.get("/v1/items/zzz")).status == 404


def test_a_gateway_holds_item_stats_packed_without_the_workers_replay_offsets(read_model):
    import sys

    stats = item_stats.apply_event(item_stats.empty(), "view", 10.0, 3, 41, 86400.0, 3600.0)
    stats = item_stats.apply_event(stats, "impression", 12.5, 3, 42, 86400.0, 3600.0)
    stats = item_stats.apply_event(stats, "click", 13.25, 3, 43, 86400.0, 3600.0)
    read_model.apply(item_stats.NAME, "a", stats)
    held = read_model.tables[item_stats.NAME]["a"]
    assert stats["src"] == {"3": 43} and type(held) is bytes and sys.getsizeof(held) <= 81
    read = read_model.stats("a")
    assert (read["counts"], read["pop"], read["trend"], read["ts"]) == (stats["counts"], stats["pop"], stats["trend"], stats["ts"])
    now, half_life, trend_half_life = 20.0, 86400.0, 3600.0
    assert (item_stats.public_view("a", read, now, half_life, trend_half_life)
            == item_stats.public_view("a", stats, now, half_life, trend_half_life))  # every read the same
    # what the bytes cannot hold exactly stays the dict, without the offsets, and reads the same
    for odd in ({**stats, "counts": {**stats["counts"], "refund": 1}}, {**stats, "counts": {"view": 2**32}},
                {**stats, "counts": {"view": -1}}):
        read_model.apply(item_stats.NAME, "b", odd)
        assert read_model.tables[item_stats.NAME]["b"] == {k: v for k, v in odd.items() if k != "src"}
        assert read_model.stats("b")["counts"] == odd["counts"]
    assert read_model.stats("nothing") is None


async def test_popular_orders_by_decayed_popularity_and_skips_deleted_items(client, read_model):
    fill(read_model)
    body = await (await client.get("/v1/items/popular?k=5")).json()
    assert [i["item_id"] for i in body["items"]] == ["b", "a"]
    assert body["items"][0]["title"] == "Drill"
    assert (await client.get("/v1/items/popular?k=0")).status == 400
    assert (await client.get("/v1/items/popular?k=ten")).status == 400


async def test_deleting_a_record_removes_it(client, read_model):
    fill(read_model)
    read_model.apply(user_profiles.NAME, "u1", None)
    assert (await client.get("/v1/users/u1")).status == 404


async def test_health_readiness_and_metrics(client):
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/readyz")).status == 200
    await client.get("/v1/users/x")
    text = await (await client.get("/metrics")).text()
    assert 'streamrank_http_requests_total{method="GET",route="/v1/users/{user_id}",status="404"} 1.0' in text
    assert "streamrank_http_request_duration_seconds_bucket" in text
