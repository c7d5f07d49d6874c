"""End to end on real Kafka: replayed Beauty events and malformed records through the worker,
into the tables, out of the gateway; and a worker killed mid-stream loses and doubles nothing."""
from __future__ import annotations

import asyncio
import time

import pytest

from app.gateway.app import init_app
from app.kafka_io import make_consumer
from app.processes import scrape, worker_process
from tests.integration.conftest import produce_records
from tests.integration.replay_expectations import expected_state
from tests.integration import replay_expectations as replay

N_EVENTS = 20_000
MALFORMED = [
    b"this is not json",
    b'{"event_id": "m1", "user_id": "u", "type": "view", "item_id": "i"',  # truncated
    b'{"event_id": "m2", "user_id": "u", "type": "like", "item_id": "i"}',  # unknown type
    b'{"event_id": "m3", "user_id": ["u"], "type": "view", "item_id": "i"}',  # wrong type
    b'{"user_id": "u", "type": "view", "item_id": "i"}',  # no event id
    b'{"event_id": "m5", "user_id": "u", "type": "view"}',  # no item
    b'{"event_id": "m6", "user_id": "u", "type": "view", "item_id": "i", "ts": "noon"}',
    b"[1, 2, 3]",
    b'{"event_id": "m8", "user_id": "u", "type": "view", "item_id": "i", "query": "' + b"x" * 70_000 + b'"}',
    b"\xff\xfe\x00\x01",
]


@pytest.fixture(scope="module")
def beauty_events(broker):
    return replay.beauty_events(broker, N_EVENTS)


async def dead_letters(settings, expected: int, timeout_s: float = 60.0):
    consumer = make_consumer(settings, settings.topics.dead_letters,
                                group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    found = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(found) < expected and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                found.extend(records)
    finally:
        await consumer.stop()
    return found


async def wait_for_gateway_state(client, users: dict, items: dict, timeout_s: float) -> tuple[dict, dict]:
    """Poll the gateway until every user and item matches, or time runs out; returns mismatches."""
    deadline = time.monotonic() + timeout_s
    while True:
        bad_users = {}
        for user_id, want in users.items():
            r = await client.get(f"/v1/users/{user_id}")
            got = await r.json() if r.status == 200 else None
            if got is None or got["counts"] != want["counts"] or got["recent_items"] != want["recent_items"]:
                bad_users[user_id] = (want, got)
        bad_items = {}
        if not bad_users:
            for item_id, want in items.items():
                r = await client.get(f"/v1/items/{item_id}")
                got = (await r.json())["stats"]["counts"] if r.status == 200 else None
                if got != want:
                    bad_items[item_id] = (want, got)
        if (not bad_users and not bad_items) or time.monotonic() > deadline:
            return bad_users, bad_items
        await asyncio.sleep(1.0)


def keyed(events):
    return [(e.user_id.encode(), e.to_json()) for e in events]


async def test_replay_and_malformed_records_end_up_exactly_in_tables_and_dead_letters(
        stack_settings, beauty_events, aiohttp_client, tmp_path):
    settings = stack_settings
    duplicates = keyed(beauty_events[:50])  # re-sent: same event ids, new offsets
    await produce_records(settings, keyed(beauty_events[: N_EVENTS // 2]) + [(b"u", m) for m in MALFORMED]
                  + keyed(beauty_events[N_EVENTS // 2:]) + duplicates)
    users, items = expected_state(beauty_events, settings.features.recent_items)

    worker = worker_process(settings, tmp_path / "worker.log").start()
    try:
        client = await aiohttp_client(init_app(settings))
        bad_users, bad_items = await wait_for_gateway_state(client, users, items, timeout_s=300)
        assert not bad_users, f"{len(bad_users)} users differ, e.g. {next(iter(bad_users.items()))}\n{worker.tail()}"
        assert not bad_items, f"{len(bad_items)} items differ, e.g. {next(iter(bad_items.items()))}"
        assert (await client.get("/readyz")).status == 200

        letters = await dead_letters(settings, len(MALFORMED))
        assert sorted(r.value for r in letters) == sorted(MALFORMED)
        reasons = {r.value: dict(r.headers)["reason"].decode() for r in letters}
        assert "not valid JSON" in reasons[MALFORMED[0]]
        assert "'type' must be one of" in reasons[MALFORMED[2]]
        assert "over the limit" in reasons[MALFORMED[8]]
        assert all(dict(r.headers)["source_topic"] == settings.topics.events.encode() for r in letters)

        metrics = scrape(settings.worker.metrics_port)
        assert metrics["streamrank_dead_letters_total"] == len(MALFORMED)
        assert metrics["streamrank_events_duplicate_total"] == len(duplicates)

        popular = (await (await client.get("/v1/items/popular?k=5")).json())["items"]
        scores = [p["score"] for p in popular]
        assert scores == sorted(scores, reverse=True) and len(popular) == 5
        # the most popular item is among the most bought ones of the file
        top_bought = sorted(items, key=lambda i: -items[i].get("purchase", 0))[:50]
        assert popular[0]["item_id"] in top_bought
    finally:
        worker.stop()


async def test_worker_killed_mid_replay_resumes_without_loss_or_double_count(
        stack_settings, beauty_events, aiohttp_client, tmp_path):
    settings = stack_settings
    await produce_records(settings, keyed(beauty_events))
    users, items = expected_state(beauty_events, settings.features.recent_items)
    log = tmp_path / "worker.log"

    worker = worker_process(settings, log).start()
    processed = 0.0
    deadline = time.monotonic() + 180
    while processed < N_EVENTS * 0.2 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        try:
            processed = scrape(settings.worker.metrics_port).get("streamrank_events_processed_total", 0.0)
        except OSError:
            pass
    assert N_EVENTS * 0.2 <= processed < N_EVENTS, f"kill not mid-stream ({processed})\n{worker.tail()}"
    worker.kill()  # SIGKILL: no flush, no commit

    restarted = worker_process(settings, log).start()
    try:
        client = await aiohttp_client(init_app(settings))
        bad_users, bad_items = await wait_for_gateway_state(client, users, items, timeout_s=300)
        assert not bad_users, f"{len(bad_users)} users differ, e.g. {next(iter(bad_users.items()))}\n{restarted.tail()}"
        assert not bad_items, f"{len(bad_items)} items differ, e.g. {next(iter(bad_items.items()))}"
    finally:
        restarted.stop()
