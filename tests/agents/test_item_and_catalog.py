import orjson


async def test_item_stats_count_each_source_offset_once(worker):
    w, _ = worker
    agent = w.app.agents["item-events"]
    msgs = [{"type": "view", "ts": 10.0, "src": [0, 1]}, {"type": "click", "ts": 11.0, "src": [0, 2]},
            {"type": "click", "ts": 11.0, "src": [0, 2]},  # a forward replayed after a crash
            {"type": "impression", "ts": 12.0, "src": [1, 1]}]
    async with agent.test_context() as ctx:
        for m in msgs:
            await ctx.put(orjson.dumps(m), key=b"i1")
    stats = w.items["i1"]
    assert stats["counts"] == {"view": 1, "click": 1, "impression": 1}
    assert stats["src"] == {"0": 2, "1": 1}
    assert stats["pop"] > 2.9  # view 1 + click 2, barely decayed


async def test_catalog_upserts_deletes_and_rejects(worker):
    w, sent = worker
    agent = w.app.agents["catalog-changes"]
    records = [
        {"item_id": "i1", "title": "Cordless drill", "price": 99.0, "stock": 4, "ts": 10},
        {"item_id": "i1", "title": "Old title", "ts": 5},  # older than what we have
        {"item_id": "i2", "title": "Hammer", "ts": 10},
        {"op": "delete", "item_id": "i2", "ts": 11},
        {"item_id": "i3", "price": 1},  # no title
    ]
    async with agent.test_context() as ctx:
        for r in records:
            await ctx.put(orjson.dumps(r), key=r["item_id"].encode())
    assert w.catalog["i1"]["title"] == "Cordless drill"
    assert w.catalog["i2"]["deleted"] is True
    assert "i3" not in w.catalog
    letters = sent.to(w.dead_letters_topic)
    assert len(letters) == 1 and b"'title' is required" in dict(letters[0][2])["reason"]
