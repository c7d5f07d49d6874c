"""The broker restarts mid-stream: the worker and the gateway carry on by themselves."""
from __future__ import annotations

import asyncio
import os
import subprocess
import time

import orjson
import pytest

from app.gateway.app import init_app
from app.processes import worker_process
from app.settings import ROOT


async def post_until_accepted(client, event, timeout_s=60.0):
    deadline = time.monotonic() + timeout_s
    while True:
        r = await client.post("/v1/events", data=orjson.dumps(event))
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


async def test_worker_and_gateway_recover_from_a_broker_restart(stack_settings, aiohttp_client, tmp_path):
    if os.environ.get("KAFKA_BROKER"):
        pytest.skip("restarts only the project's own broker, not the cluster KAFKA_BROKER names")
    settings = stack_settings
    worker = worker_process(settings, tmp_path / "worker.log").start()
    try:
        client = await aiohttp_client(init_app(settings))
        ev = {"user_id": "ur", "type": "view", "item_id": "i1"}
        assert await post_until_accepted(client, {**ev, "event_id": "before"}) == 202
        assert await wait_for_counts(client, "ur", {"view": 1}) == {"view": 1}, worker.tail()

        subprocess.run([str(ROOT / "scripts" / "kafka.sh"), "restart"], check=True, capture_output=True)

        for i in range(3):
            assert await post_until_accepted(client, {**ev, "event_id": f"after{i}", "type": "click"}) == 202
        assert await wait_for_counts(client, "ur", {"view": 1, "click": 3}) == {"view": 1, "click": 3}, worker.tail()
        assert worker.alive()
    finally:
        worker.stop()
