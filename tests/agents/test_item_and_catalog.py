import orjson

from tables.wire.records import ItemEvent, item_events_json


async def test_item_stats_count_each_source_offset_once(worker, put_all):
    w, _ = worker
    msgs = [{"type": "view", "ts": 10.0, "src": [0, 1]}, {"type": "click", "ts": 11.0, "src": [0, 2]},
            {"type": "click", "ts": 11.0, "src": [0, 2]},  # a forward replayed after a crash
            {"type": "impression", "ts": 12.0, "src": [1, 1]}]
    await put_all(w, "item-events", [(b"i1", orjson.dumps(m)) for m in msgs])  # one forward a record
    stats = w.items["i1"]
    assert stats["counts"] == {"view": 1, "click": 1, "impression": 1}
    assert stats["src"] == {"0": 2, "1": 1}
    assert stats["pop"] > 2.9  # view 1 + click 2, barely decayed


async def test_a_record_of_many_forwards_updates_each_item_once_per_source_offset(worker, put_all):
    w, sent = worker
    home = w.partition_of(b"i1", w.settings.topics.partitions)
    same_home = next(f"j{k}" for k in range(1000) if w.partition_of(f"j{k}".encode(), w.settings.topics.partitions) == home)
    first = [ItemEvent("i1", "view", 10.0, 0, 1), ItemEvent(same_home, "click", 10.0, 0, 2),
             ItemEvent("i1", "click", 11.0, 0, 3)]
    replayed = [ItemEvent("i1", "click", 11.0, 0, 3), ItemEvent("i1", "purchase", 12.0, 1, 7)]
    await put_all(w, "item-events", [(None, item_events_json(first)), (None, item_events_json(replayed))],
                  partition=home)
    assert w.items["i1"]["counts"] == {"view": 1, "click": 1, "purchase": 1}
    assert w.items["i1"]["src"] == {"0": 3, "1": 7}
    assert w.items[same_home]["counts"] == {"click": 1}
    # One changelog record per row changed in a batch, however many forwards touched it.
    changelog = w.items.changelog_topic.get_topic_name()
    keys = [k for k, _, _ in sent.by_topic[changelog]]
    assert sorted(keys) == sorted(w.items.data._encode_key(k) for k in ("i1", same_home))  # as Faust writes them
    assert sorted(keys) == sorted([b'"i1"', f'"{same_home}"'.encode()])
    assert set(sent.partitions[changelog]) == {home}


async def test_a_forward_outside_its_items_partition_is_a_dead_letter(worker, put_all):
    w, sent = worker
    n = w.settings.topics.partitions
    home = w.partition_of(b"i1", n)
    await put_all(w, "item-events", [(None, item_events_json([ItemEvent("i1", "view", 10.0, 0, 1)]))],
                  partition=(home + 1) % n)
    (_, _, headers), = sent.to(w.dead_letters_topic)
    assert f"belongs to partition {home}" in dict(headers)["reason"].decode()
    assert "i1" not in w.items


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
