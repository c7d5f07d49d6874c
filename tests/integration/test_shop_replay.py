"""`streamrank replay --dataset homedepot` on the real broker: the demo's one shop. The catalog
(with prices) and the shoppers' events land on the topics; carts and purchases follow clicks
and name catalog products; shoppers come back."""
import argparse
import asyncio
import time
from collections import Counter

import orjson

from app.jobs.replay import replay_homedepot
from app.kafka_io import make_consumer
from tests.gateway.test_search_finetune_swap import PRODUCTS, write_judgments

SESSIONS = 120


async def read_topic(settings, topic, count, timeout_s=60.0):
    """The first `count` record values of `topic` (every partition), polling up to a deadline."""
    consumer = make_consumer(settings, topic, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    out = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(out) < count and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                out.extend(orjson.loads(r.value) for r in records)
    finally:
        await consumer.stop()
    return out


def test_the_shop_replay_sends_a_priced_catalog_and_shoppers_who_buy(stack_settings, tmp_path, capsys):
    settings = stack_settings
    path = write_judgments(tmp_path / "shop.csv.gz")
    args = argparse.Namespace(sessions=SESSIONS, sessions_only=False, ranker="local", gateway=None, users=10, k=5,
                              seed=3, test_queries=None, run_id="it", rate=0.0, limit=0)
    assert asyncio.run(replay_homedepot(settings, path, args)) == 0
    summary = orjson.loads(capsys.readouterr().out.strip().splitlines()[-1])

    catalog = asyncio.run(read_topic(settings, settings.topics.catalog, len(PRODUCTS)))
    assert {c["item_id"] for c in catalog} == {p for p, _, _ in PRODUCTS}
    assert all(c["price"] > 0 and c["title"] for c in catalog)

    total = SESSIONS + sum(summary[kind] for kind in ("impressions", "clicks", "carts", "purchases"))
    events = asyncio.run(read_topic(settings, settings.topics.events, total))
    assert len(events) == total
    kinds = Counter(e["type"] for e in events)
    assert kinds["search"] == SESSIONS and kinds["add_to_cart"] == summary["carts"] > 0
    assert kinds["purchase"] == summary["purchases"] > 0
    assert {e["item_id"] for e in events if "item_id" in e} <= {p for p, _, _ in PRODUCTS}
    clicked = {(e["request_id"], e["item_id"]) for e in events if e["type"] == "click"}
    carted = {(e["request_id"], e["item_id"]) for e in events if e["type"] == "add_to_cart"}
    assert carted <= clicked and {(e["request_id"], e["item_id"]) for e in events if e["type"] == "purchase"} <= carted
    searches = Counter(e["user_id"] for e in events if e["type"] == "search")
    assert len(searches) == summary["shoppers"] <= 10 and max(searches.values()) >= 5  # they come back
