"""The broker restarts mid-stream: the worker and the gateway carry on by themselves.

The test restarts a broker of its own (scripts/kafka.sh with a private KAFKA_HOME and
port), never the shared one nor a cluster that KAFKA_BROKER names.
"""
from __future__ import annotations

import asyncio
import os
import subprocess
import time

import orjson
import pytest

from app.gateway.app import init_app
from app.kafka_io import ensure_topics
from app.processes import free_port, worker_process
from app.settings import ROOT


async def post_until_accepted(client, event, timeout_s=60.0):
    deadline = time.monotonic() + timeout_s
    while True:
        r = await client.post("/v1/events", data=orjson.dumps(event), headers={"Content-Type": "application/json"})
        if r.status == 202 or time.monotonic() > deadline:
            return r.status
        await asyncio.sleep(1.0)


async def wait_for_counts(client, user_id, want, timeout_s=120.0):
    deadline = time.monotonic() + timeout_s
    got = None
    while time.monotonic() < deadline:
        r = await client.get(f"/v1/users/{user_id}")
        got = (await r.json()).get("counts") if r.status == 200 else None
        if got == want:
            break
        await asyncio.sleep(0.5)
    return got


@pytest.fixture
def private_broker(tmp_path):
    """(kafka.sh with this broker's environment, its port); stopped after the test."""
    port = free_port()
    env = {**os.environ, "KAFKA_HOME": str(tmp_path / "kafka"), "KAFKA_PORT": str(port)}

    def kafka(command: str) -> None:
        done = subprocess.run([str(ROOT / "scripts" / "kafka.sh"), command], env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"kafka.sh {command} failed:\n{done.stdout}\n{done.stderr}"

    kafka("start")
    yield kafka, port
    kafka("stop")


async def test_worker_and_gateway_recover_from_a_broker_restart(stack_settings, private_broker, aiohttp_client, tmp_path):
    kafka, port = private_broker
    settings = stack_settings.replace(kafka_broker=f"127.0.0.1:{port}")
    await ensure_topics(settings)
    worker = worker_process(settings, tmp_path / "worker.log").start()
    try:
        client = await aiohttp_client(init_app(settings))
        ev = {"user_id": "ur", "type": "view", "item_id": "i1"}
        assert await post_until_accepted(client, {**ev, "event_id": "before"}) == 202
        assert await wait_for_counts(client, "ur", {"view": 1}) == {"view": 1}, worker.tail()

        kafka("restart")

        for i in range(3):
            assert await post_until_accepted(client, {**ev, "event_id": f"after{i}", "type": "click"}) == 202
        assert await wait_for_counts(client, "ur", {"view": 1, "click": 3}) == {"view": 1, "click": 3}, worker.tail()
        assert worker.alive()
    finally:
        worker.stop()
