"""Version numbers only go forward through learner crashes, and a gateway started afterwards
serves the learner's latest version, past records that are not the learner's.

The learner runs in its own process beside a worker, SIGKILLed twice while events stream in,
each time after publishing a version its checkpoint lacks. The restarted learner used to
republish its checkpoint under that checkpoint's (lower) number; a gateway that held higher
ones failed on it with KeyError and retried it forever. Garbage on model-updates (unsigned,
forged, non-UTF-8 headers, a header key the Kafka client cannot even parse), model-commands
and samples must each be dead-lettered and skipped by whoever reads it."""
from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import pytest
from prometheus_client import generate_latest

from app.gateway.app import init_app
from app.gateway.keys import METRICS, MODEL_UPDATES
from app.kafka_io import make_producer, model_update_records, produce_events
from app.learner import checkpoints
from app.metrics import sample_sum
from app.processes import free_port, learner_process, scrape, settings_env, worker_process
from tables.wire.updates import VERSION_KINDS, encode_version, read_version, signing_key, valid_records
from models.online.versions import Version
from tests.integration.conftest import events_consumed, wait_for
from tests.integration.replay_expectations import beauty_events

N_EVENTS = 3000


@pytest.fixture(scope="module")
def events(broker):
    return beauty_events(broker, N_EVENTS)


def served_by_learner(settings) -> int:
    """The version the learner process last published (0 while it is not answering)."""
    try:
        return int(scrape(settings.learner.metrics_port).get("streamrank_learner_serving_version", 0))
    except OSError:
        return 0


def worker_series(settings, name: str, **labels: str) -> float:
    try:
        text = _worker_text(settings)
    except OSError:
        return 0.0
    return sample_sum(text, name, **labels)


def _worker_text(settings) -> str:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{settings.learner.metrics_port}/metrics", timeout=2) as r:
        return r.read().decode()


def newest_checkpoint(settings) -> int:
    found = checkpoints(settings.runtime.online_model_dir)
    return int(found[-1].name[1:]) if found else 0


async def published(settings) -> list[Version]:
    """The versions on model-updates that the learner signed, oldest first."""
    records = valid_records(await model_update_records(settings), signing_key(settings))
    return [read_version(r) for r in records if r.kind in VERSION_KINDS]


async def write(settings, topic: str, records: list[tuple[bytes, list[tuple[str, bytes]]]]) -> None:
    producer = make_producer(settings)
    await producer.start()
    try:
        for value, headers in records:
            await producer.send_and_wait(topic, value, key=b"rec", headers=headers)
    finally:
        await producer.stop()


# A record whose header key is not UTF-8, as a client writing raw header bytes (kcat -H) can
# make: aiokafka's producer encodes keys itself, so its pure-Python record builder is handed
# a key that encodes to other bytes. aiokafka's consumer fails every fetch that reaches it.
RAW_HEADER_KEY = """
import asyncio, sys
from app.kafka_io import make_producer
from app.settings import Settings

class RawKey(str):
    def encode(self, *args, **kwargs):
        return b"\\xff\\xfe"

async def main(topics):
    producer = make_producer(Settings.from_env())
    await producer.start()
    try:
        for topic in topics:
            await producer.send_and_wait(topic, b"x", headers=[(RawKey("k"), b"v")])
    finally:
        await producer.stop()

asyncio.run(main(sys.argv[1:]))
"""


def write_raw_header_key(settings, *topics: str) -> None:
    env = {**settings_env(settings), "AIOKAFKA_NO_EXTENSIONS": "1"}
    subprocess.run([sys.executable, "-c", RAW_HEADER_KEY, *topics], env=env, check=True, timeout=120,
                   capture_output=True)


def forged_version(number: int) -> tuple[bytes, list[tuple[str, bytes]]]:
    return encode_version(Version(number=number, parent=0, created=0.0, full=True), b"not-the-key" * 3)


async def test_numbers_only_go_forward_across_two_kills_and_a_new_gateway_reaches_the_latest(
        stack_settings, events, aiohttp_client, tmp_path):
    # Every proposal with a sample promotes; a checkpoint is taken at a learner's first
    # version only (the interval is long), so a kill loses what was published after it.
    settings = stack_settings.replace(version_interval_s=1.0, checkpoint_interval_s=600.0, guard_min_samples=1,
                       guard_ratio=0.001, learner_poll_s=0.05, search_dense=False, learner_metrics_port=free_port(),
                       learner_session_timeout_s=6.0)
    waves = [events[i * N_EVENTS // 4:(i + 1) * N_EVENTS // 4] for i in range(4)]
    log = tmp_path / "learner.log"
    agents = worker_process(settings, tmp_path / "worker.log").start()
    try:
        await _kill_twice_then_serve(settings, events, aiohttp_client, log, waves)
    finally:
        agents.stop()


async def _kill_twice_then_serve(settings, events, aiohttp_client, log, waves) -> None:
    # 1. Versions past the checkpoint, then SIGKILL.
    await produce_events(settings, waves[0])
    learner = learner_process(settings, log).start()
    try:
        await wait_for(lambda: served_by_learner(settings) >= 1, 300, "a first version", learner)
        await produce_events(settings, waves[1])
        await wait_for(lambda: served_by_learner(settings) >= 2
                       and served_by_learner(settings) > newest_checkpoint(settings), 300,
                       "a version the checkpoint lacks", learner)
    finally:
        learner.kill()
    first = max(v.number for v in await published(settings))
    assert first > newest_checkpoint(settings)
    await write(settings, settings.topics.model_updates, [
        (b"garbage", [("type", b"version"), ("version", b"99999")]),  # unsigned, with a high number
        forged_version(99998),
        (b"{}", [("type", b"\xff\xfe"), ("version", b"1"), ("signature", b"00")]),
    ])
    write_raw_header_key(settings, settings.topics.model_updates)

    # 2. The restarted learner republishes its checkpoint as first + 1; more versions; SIGKILL.
    learner = learner_process(settings, log).start()
    try:
        await wait_for(lambda: served_by_learner(settings) > first, 300, "the republished version", learner)
        await produce_events(settings, waves[2])
        await wait_for(lambda: served_by_learner(settings) >= first + 2
                       and served_by_learner(settings) > newest_checkpoint(settings), 300,
                       "a version the second checkpoint lacks", learner)
    finally:
        learner.kill()
    second = max(v.number for v in await published(settings))
    assert second > newest_checkpoint(settings)
    await write(settings, settings.topics.model_commands, [
        (b'{"action": "rollback", "version": 1}', [("type", b"command"), ("version", b"1")]),  # unsigned
        forged_version(1),
    ])
    await write(settings, settings.topics.samples, [(b"{not a sample", [])])
    write_raw_header_key(settings, settings.topics.model_commands, settings.topics.samples)

    # 3. The third learner goes on above `second`, skipping the bad commands and sample.
    learner = learner_process(settings, log).start()
    try:
        await wait_for(lambda: served_by_learner(settings) > second, 300, "a version after the second kill", learner)
        await produce_events(settings, waves[3])
        deadline = time.monotonic() + 300
        while not await events_consumed(settings):
            assert learner.alive() and time.monotonic() < deadline, learner.tail()
            await asyncio.sleep(1.0)
        await wait_for(lambda: worker_series(settings, "streamrank_dead_letters_total", source="model-commands") == 3
                       and worker_series(settings, "streamrank_dead_letters_total", source="samples") >= 2, 60,
                       "the bad commands and sample dead-lettered", learner)

        # 4. A gateway started now reaches what the learner serves, past the garbage.
        client = await aiohttp_client(init_app(settings))
        app = client.server.app
        deadline = time.monotonic() + 60
        while app[MODEL_UPDATES].serving_version != served_by_learner(settings):
            assert time.monotonic() < deadline, (app[MODEL_UPDATES].serving_version, served_by_learner(settings),
                                                 learner.tail())
            await asyncio.sleep(0.5)
        body = await (await client.get(f"/v1/recommend?user_id={events[-1].user_id}&k=5")).json()
        assert body["model_version"] == f"online-v{app[MODEL_UPDATES].serving_version}"
        text = generate_latest(app[METRICS].registry).decode()
        assert sample_sum(text, "streamrank_dead_letters_total", source="model-updates") == 4
        assert worker_series(settings, "streamrank_model_decisions_total", decision="manual_rollback") == 0
    finally:
        learner.stop()

    versions = await published(settings)
    numbers = [v.number for v in versions]
    assert numbers == sorted(set(numbers)), numbers  # strictly increasing
    republished = [v for v in versions if v.metrics.get("republished")]
    assert [v.number for v in republished] == [first + 1, second + 1], numbers
    assert all(v.full for v in republished)
    assert max(numbers) < 99998  # the unsigned and forged numbers were not taken for published ones
