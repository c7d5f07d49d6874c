"""Scale-out on real Kafka: two workers in one group (one SIGKILLed mid-replay, a third added:
two rebalances), an active learner and a standby (the active one SIGKILLed), and two gateways.
At the end every table counter equals the file, the standby has taken over, and both gateways
answer the same state and serve the same online model version."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp

from app.kafka_io import produce_events
from app.processes import Process, free_port, gateway_process, learner_process, scrape, worker_process
from app.settings import Settings
from tests.integration.replay_expectations import beauty_events, expected_state, gateway_mismatches
from tests.integration.conftest import events_consumed, published_versions, wait_for

FIRST_WAVE = 5000  # replayed while the workers are killed and added
SECOND_WAVE = 1000  # produced once the third worker and the standby learner are in
SAMPLE = 150  # users and items compared between the two gateways
READY = "[^Worker]: Ready"  # Faust's log line once a worker has its first assignment
SESSION_TIMEOUT_S = "15"  # the group drops a SIGKILLed worker after this (Faust's default: 60)


def metric(port: int, name: str) -> float:
    try:
        return scrape(port).get(name, 0.0)
    except OSError:
        return 0.0


def start_worker(settings: Settings, tmp_path: Path, i: int) -> tuple[Process, int]:
    """A worker of the shared group, with a state dir and metrics port of its own."""
    port = free_port()
    own = settings.replace(state_dir=tmp_path / f"worker{i}", worker_metrics_port=port)
    worker = worker_process(own, tmp_path / f"worker{i}.log")
    worker.env["BROKER_SESSION_TIMEOUT"] = SESSION_TIMEOUT_S
    return worker.start(), port


async def same_answers(a: aiohttp.ClientSession, b: aiohttp.ClientSession, paths: list[str]) -> list[str]:
    """The paths on which the two gateways answer differently."""
    differ = []
    for path in paths:
        async with a.get(path) as ra, b.get(path) as rb:
            if (ra.status, await ra.json()) != (rb.status, await rb.json()):
                differ.append(path)
    return differ


async def produce_paced(settings, events, chunk: int = 250, pause_s: float = 0.1) -> None:
    for first in range(0, len(events), chunk):
        await produce_events(settings, events[first:first + chunk])
        await asyncio.sleep(pause_s)


# Not flaky: this found events skipped on rebalance (offsets committed past an item-events
# record never applied, one count short in 1 of 3 runs under load), and with the batched
# agents, runs of records a partition never read after a takeover (fix 4 in
# app/faust_compat.py: a callback awaited inline through a rebalance).
async def test_workers_killed_and_added_a_standby_learner_and_two_gateways_agree_with_the_file(
        stack_settings, tmp_path):
    settings = stack_settings.replace(version_interval_s=1.0, checkpoint_interval_s=2.0, guard_min_samples=1,
                       guard_ratio=0.001, learner_poll_s=0.05, search_dense=False, learner_session_timeout_s=6.0)
    events = beauty_events(settings, FIRST_WAVE + SECOND_WAVE)
    users, items = expected_state(events, settings.features.recent_items)
    procs: list[Process] = []
    try:
        # The learners share the test's state dir (its checkpoints); the gateways only follow topics.
        learner_ports = [free_port(), free_port()]
        learners = [learner_process(settings.replace(learner_metrics_port=p), tmp_path / f"learner{i}.log").start()
                    for i, p in enumerate(learner_ports)]
        procs += learners
        gateway_ports = [free_port(), free_port()]
        gateways = [gateway_process(settings.replace(gateway_port=p), tmp_path / f"gateway{i}.log").start()
                    for i, p in enumerate(gateway_ports)]
        procs += gateways
        (w0, w0_port), (w1, w1_port) = (start_worker(settings, tmp_path, i) for i in range(2))
        procs += [w0, w1]
        # Produced once both workers hold partitions, so that both take part before the kill.
        await wait_for(lambda: all(READY in w.tail(3000) for w in (w0, w1)), 240, "two workers ready", w0, w1)
        # Paced (~2,000 events/s at most): a batched worker clears 5,000 events in about a
        # second, so a wave sent at once could be processed whole before the kill.
        first_wave = asyncio.create_task(produce_paced(settings, events[:FIRST_WAVE]))

        # Kill mid-replay, once both workers have processed some events.
        processed = lambda port: metric(port, "streamrank_events_processed_total")  # noqa: E731
        await wait_for(lambda: processed(w0_port) > 0 and processed(w1_port) > 0
                       and processed(w0_port) + processed(w1_port) >= FIRST_WAVE * 0.15,
                       240, "both workers processing", w0, w1)
        done = processed(w0_port) + processed(w1_port)
        assert done < FIRST_WAVE, f"the kill was not mid-replay ({done} of {FIRST_WAVE} processed)"
        w0.kill()  # SIGKILL: no flush, no commit; the group rebalances once its session times out
        await first_wave
        w2, w2_port = start_worker(settings, tmp_path, 2)  # and again when this one joins
        procs.append(w2)

        # The active learner (the one publishing) is SIGKILLed; the standby must number above it.
        version = lambda i: metric(learner_ports[i], "streamrank_learner_serving_version")  # noqa: E731
        await wait_for(lambda: max(version(0), version(1)) >= 1, 240, "a first online version", *learners)
        active = 0 if version(0) >= 1 else 1
        standby = 1 - active
        assert version(standby) == 0 and "standing by" in learners[standby].tail(3000)
        learners[active].kill()
        killed_at = max(await published_versions(settings))

        # The second wave goes out once the third worker has its partitions, so it takes part.
        await wait_for(lambda: READY in w2.tail(3000), 240, "the third worker ready", w1, w2)
        await produce_events(settings, events[FIRST_WAVE:])
        await wait_for(lambda: version(standby) > killed_at, 240, "the standby's first version", learners[standby])
        assert "learner lock taken" in learners[standby].tail(3000)
        deadline = time.monotonic() + 300
        while not await events_consumed(settings):
            assert w1.alive() and w2.alive() and time.monotonic() < deadline, w1.tail() + "\n" + w2.tail()
            await asyncio.sleep(1.0)
        assert processed(w2_port) > 0, "the added worker processed nothing"

        bases = [f"http://127.0.0.1:{p}" for p in gateway_ports]
        async with aiohttp.ClientSession(bases[0]) as a, aiohttp.ClientSession(bases[1]) as b:
            # Every counter of every table, through the first gateway, equals the file.
            deadline = time.monotonic() + 180
            while (bad := await gateway_mismatches(a, users, items)) != ({}, {}):
                assert time.monotonic() < deadline, \
                    f"{len(bad[0])} users, {len(bad[1])} items differ, e.g. {next(iter({**bad[0], **bad[1]}.items()))}"
                await asyncio.sleep(1.0)
            # The second one answers the same for a sample (and what it answers is the file's).
            sample_users = dict(list(users.items())[::max(1, len(users) // SAMPLE)])
            sample_items = dict(list(items.items())[::max(1, len(items) // SAMPLE)])
            deadline = time.monotonic() + 180
            while (bad := await gateway_mismatches(b, sample_users, sample_items)) != ({}, {}):
                assert time.monotonic() < deadline, f"second gateway: {len(bad[0])} users, {len(bad[1])} items differ"
                await asyncio.sleep(1.0)
            paths = [f"/v1/users/{u}" for u in sample_users] + [f"/v1/items/{i}" for i in sample_items]
            assert await same_answers(a, b, paths) == []

        # Both gateways reach the newest published online version (the standby's).
        online = lambda port: metric(port, "streamrank_gateway_online_version")  # noqa: E731
        deadline = time.monotonic() + 120
        while True:
            last = max(await published_versions(settings))
            seen = [online(p) for p in gateway_ports]
            if seen == [last, last]:
                break
            assert time.monotonic() < deadline, (seen, last, gateways[0].tail(10), gateways[1].tail(10))
            await asyncio.sleep(1.0)
        assert last > killed_at
    finally:
        for proc in procs:
            proc.stop()
