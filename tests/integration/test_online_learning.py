"""The online learner on real Kafka: samples from events, versions to the gateway, a manual
rollback through the admin API, and an active learner killed mid-stream whose hot standby
takes over from its checkpoint without losing a sample or learning one twice."""
from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import orjson
import pytest
from aiokafka import TopicPartition

from app.gateway.app import init_app
from app.gateway.keys import SERVING
from app.kafka_io import make_consumer, produce_events
from app.learner import SampleDedupe, load_latest
from app.processes import Process, free_port, learner_process, scrape, worker_process
from tests.integration.conftest import events_consumed, published_versions, wait_for
from tests.integration.replay_expectations import beauty_events

N_EVENTS = 4000


@pytest.fixture(scope="module")
def events(broker):
    return beauty_events(broker, N_EVENTS)


@pytest.fixture
def learner_settings(stack_settings):
    # Every proposal with a sample promotes (guard_min_samples 1, a guard nothing fails), so
    # the last checkpoint holds every sample; the guard itself is tested in tests/unit.
    return stack_settings.replace(version_interval_s=1.0, checkpoint_interval_s=2.0, guard_min_samples=1, guard_ratio=0.001,
                   learner_poll_s=0.05, admin_token="t0ken", search_dense=False, learner_metrics_port=free_port(),
                   learner_session_timeout_s=6.0)


produce = produce_events


async def distinct_samples(settings) -> dict[str, int]:
    """Samples in the samples topic per kind, each counted once (redeliveries make copies)."""
    tp = TopicPartition(settings.topics.samples, 0)
    consumer = make_consumer(settings, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        consumer.seek(tp, 0)
        dedupe, counts = SampleDedupe(), {}
        while await consumer.position(tp) < end:
            for msg in (await consumer.getmany(tp, timeout_ms=1000)).get(tp, []):
                sample = orjson.loads(msg.value)
                if dedupe.is_new(sample):
                    counts[sample["kind"]] = counts.get(sample["kind"], 0) + 1
        return counts
    finally:
        await consumer.stop()


def learner_metric(settings, name: str, port: int | None = None) -> float:
    try:
        return scrape(port or settings.learner.metrics_port).get(name, 0.0)
    except OSError:
        return 0.0


def restartable_worker(settings, log) -> Process:
    """A worker the group drops 20 s after a SIGKILL (Faust's default is 60 s, and a worker
    started in its place waits that long for the rebalance)."""
    worker = worker_process(settings, log)
    worker.env["BROKER_SESSION_TIMEOUT"] = "20"
    return worker.start()


async def end_offsets(settings, topic: str, partitions: int) -> dict[TopicPartition, int]:
    consumer = make_consumer(settings)
    await consumer.start()
    try:
        return await consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
    finally:
        await consumer.stop()


async def test_versions_reach_the_gateway_and_an_admin_rollback_goes_through_the_learner(
        learner_settings, events, aiohttp_client, tmp_path):
    settings = learner_settings
    worker = worker_process(settings, tmp_path / "worker.log").start()
    learner = learner_process(settings, tmp_path / "learner.log").start()
    try:
        # Three waves of events, each learned into a version of its own.
        for wave in range(3):
            await produce(settings, events[wave * N_EVENTS // 3:(wave + 1) * N_EVENTS // 3])
            await wait_for(lambda wave=wave: learner_metric(settings, "streamrank_learner_serving_version") >= wave + 1, 300,
                           f"version {wave + 1}", worker, learner)
        client = await aiohttp_client(init_app(settings))
        auth = {"Authorization": "Bearer t0ken"}

        async def status():
            return await (await client.get("/v1/admin/model", headers=auth)).json()

        deadline = time.monotonic() + 60
        while (await status())["serving_version"] < 3:
            assert time.monotonic() < deadline, await status()
            await asyncio.sleep(0.5)
        user = events[-1].user_id
        body = await (await client.get(f"/v1/recommend?user_id={user}&k=5")).json()
        assert "online-v" in body["model_version"] and body["items"]

        # A new event is learned and served within seconds: after x -> y, y follows x.
        await produce(settings, [replace(events[0], event_id="fresh-1", user_id="fresh-u", item_id="fresh-x"),
                                 replace(events[0], event_id="fresh-2", user_id="fresh-u", item_id="fresh-y")])
        deadline = time.monotonic() + 60
        while True:
            similar = await (await client.get("/v1/items/fresh-x/similar?k=5")).json()
            if "fresh-y" in [i["item_id"] for i in similar["items"]] and "online-v" in similar["model_version"]:
                break
            assert time.monotonic() < deadline, (similar, scrape(settings.learner.metrics_port),
                                                 await (await client.get("/v1/users/fresh-u")).text())
            await asyncio.sleep(0.5)

        # A click on a search result counts for its (item, query) in the click model, and the
        # counts reach the gateway with the versions: an ad for it is priced by them.
        shown = replace(events[0], event_id="fresh-3", user_id="fresh-u", item_id="fresh-x", type="impression",
                        position=0, request_id="fresh-r", query="Fresh  QUERY")
        await produce(settings, [shown, replace(shown, event_id="fresh-4", type="click")])
        deadline = time.monotonic() + 60
        while (click := client.server.app[SERVING].online_click) is None or \
                click.ad_counts.counts.get(("fresh-x", "fresh query"), (0.0, 0.0))[0] < 1.0:
            assert time.monotonic() < deadline, scrape(settings.learner.metrics_port)
            await asyncio.sleep(0.5)
        assert click.ad_counts.counts[("fresh-x", "")][0] >= 1.0  # and for the item over every page

        before = await status()
        target = before["held_versions"][-2]
        r = await client.post("/v1/admin/model", data=orjson.dumps({"action": "rollback", "version": target}),
                              headers={**auth, "Content-Type": "application/json"})
        assert r.status == 202, await r.text()
        await wait_for(lambda: rollback_counted(settings), 60, "the learner's rollback", worker, learner)
        deadline = time.monotonic() + 60
        while (await status())["serving_version"] <= before["serving_version"]:
            assert time.monotonic() < deadline, await status()
            await asyncio.sleep(0.5)
        assert "rolled back to version" in learner.tail(400)
    finally:
        learner.stop()
        worker.stop()


async def test_a_gateway_started_after_retention_deleted_the_whole_versions_asks_for_one(
        learner_settings, events, aiohttp_client, tmp_path):
    """Retention (7 days by default) deletes model-updates' oldest records, whole versions with
    them. A gateway started then read from the topic's end (aiokafka's default reset), so it
    served no learner version and never caught up; and reading from the first record left,
    a delta, it lacks that delta's parent until the learner sends a version whole."""
    from aiokafka.admin.records_to_delete import RecordsToDelete

    from app.gateway.keys import METRICS, MODEL_UPDATES
    from app.kafka_io import make_admin, model_update_records
    from tables.wire.updates import decode, read_version, signing_key

    settings = learner_settings
    worker = worker_process(settings, tmp_path / "worker.log").start()
    learner = learner_process(settings, tmp_path / "learner.log").start()
    try:
        for wave in range(2):  # a whole version, then a delta on it
            await produce(settings, events[wave * N_EVENTS // 3:(wave + 1) * N_EVENTS // 3])
            await wait_for(lambda wave=wave: learner_metric(settings, "streamrank_learner_serving_version") >= wave + 1,
                           300, f"version {wave + 1}", worker, learner)
        key = signing_key(settings)
        records = [(m.offset, decode(m.value, m.headers, key)) for m in await model_update_records(settings)]
        last_offset, last = [(o, r) for o, r in records if r.kind == "version"][-1]
        assert not read_version(last).full
        admin = make_admin(settings)
        await admin.start()
        try:  # what retention does to the oldest segments
            tp = TopicPartition(settings.topics.model_updates, 0)
            await admin.delete_records({tp: RecordsToDelete(before_offset=last_offset)})
        finally:
            await admin.close()
        app = init_app(settings)
        await aiohttp_client(app)
        follower, asks = app[MODEL_UPDATES], app[METRICS].model_republish_requests
        await wait_for(follower.caught_up.is_set, 60, "the gateway reading the topic", worker, learner)
        await wait_for(lambda: asks._value.get() == 1, 60, "the gateway's ask", worker, learner)
        await wait_for(lambda: decision_count(settings, "republish") == 1, 60, "the learner's answer", worker, learner)
        # Nothing else it read could be built: whatever it serves now stands on the whole version.
        await wait_for(lambda: follower.serving_version > last.version, 60, "the whole version served", worker, learner)
        assert asks._value.get() == 1 and "sent whole as version" in learner.tail(400)
    finally:
        learner.stop()
        worker.stop()


def decision_count(settings, decision: str) -> int:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{settings.learner.metrics_port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return 0
    prefix = f'streamrank_model_decisions_total{{decision="{decision}"}} '
    return sum(int(float(line[len(prefix):])) for line in text.splitlines() if line.startswith(prefix))


def rollback_counted(settings) -> bool:
    return decision_count(settings, "manual_rollback") == 1


async def test_a_standby_learner_takes_over_from_a_killed_one_without_losing_or_repeating_samples(
        learner_settings, events, tmp_path):
    settings = learner_settings
    # In two waves: a learner that started after every event was processed took all the
    # samples into one version, and a second never came.
    half = len(events) // 2
    await produce(settings, events[:half])
    worker = worker_process(settings, tmp_path / "worker.log").start()
    ports = [settings.learner.metrics_port, free_port()]
    learners = [learner_process(settings.replace(learner_metrics_port=port), tmp_path / f"learner{i}.log").start()
                for i, port in enumerate(ports)]
    version = lambda i: learner_metric(settings, "streamrank_learner_serving_version", ports[i])  # noqa: E731
    try:
        await wait_for(lambda: max(version(0), version(1)) >= 1, 300, "a first version", worker, *learners)
        active = 0 if version(0) >= 1 else 1
        standby = 1 - active
        await produce(settings, events[half:])
        await wait_for(lambda: version(active) >= 2, 300, "two versions", worker, *learners)
        assert version(standby) == 0 and "standing by" in learners[standby].tail(3000)
        learners[active].kill()  # SIGKILL: what it learned since its last checkpoint is gone with it
        killed_at = max(await published_versions(settings))

        # The standby takes the lock, resumes from the checkpoint, and numbers above the dead one.
        await wait_for(lambda: version(standby) > killed_at, 120, "the standby's first version", worker,
                       learners[standby])
        assert "learner lock taken" in learners[standby].tail(3000)
        # Done when every event was processed (so every sample made) and the newest
        # checkpoint reached the end of the samples.
        deadline = time.monotonic() + 300
        while True:
            assert learners[standby].alive() and worker.alive(), learners[standby].tail()
            assert time.monotonic() < deadline, learners[standby].tail()
            if await events_consumed(settings):
                end = await samples_end(settings)
                learner, offsets = load_latest(settings)
                if end > 0 and offsets.get("samples") == end:
                    break
            await asyncio.sleep(1.0)
        expected = await distinct_samples(settings)
        assert learner.live_rec.samples_learned == expected["next"], (learner.live_rec.samples_learned, expected)
        numbers = await published_versions(settings)
        assert numbers == sorted(set(numbers)) and numbers[-1] > killed_at, numbers
        learners[standby].stop()  # SIGTERM: a clean stop, through its last checkpoint
        assert learners[standby].proc.returncode == 0 and "learner stopped" in learners[standby].tail(), \
            learners[standby].tail()
    finally:
        for proc in (*learners, worker):
            proc.stop()


async def samples_end(settings) -> int:
    tp = TopicPartition(settings.topics.samples, 0)
    consumer = make_consumer(settings)
    await consumer.start()
    try:
        return (await consumer.end_offsets([tp]))[tp]
    finally:
        await consumer.stop()
