"""Schemathesis fuzzes every operation of /openapi.json against the gateway served over TCP:
no input, valid or not, may produce a server error."""
from __future__ import annotations

import asyncio
import threading

import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given, settings as hsettings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from app.gateway.app import init_app
from app.gateway.read_model import ReadModel
from app.processes import free_port
from app.settings import Settings
from tests.gateway.conftest import MemorySink
from tests.gateway.conftest import fill


@pytest.fixture(scope="module")
def live_gateway(tmp_path_factory):
    settings = Settings().replace(max_event_bytes=1024, max_request_bytes=16 * 1024, max_batch_events=50,
                        state_dir=tmp_path_factory.mktemp("state"), search_dense=False)
    read_model = ReadModel(settings)
    app = init_app(settings, sink=MemorySink(), read_model=read_model, follow_changelogs=False)
    fill(read_model)
    port = free_port()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    base = f"http://127.0.0.1:{port}"
    yield base
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def operations(base: str):
    schema = schemathesis.openapi.from_dict(requests.get(f"{base}/openapi.json", timeout=5).json())
    return [result.ok() for result in schema.get_all_operations()]


def test_no_server_errors_for_generated_requests(live_gateway):
    session = requests.Session()
    ops = operations(live_gateway)
    assert len(ops) >= 12
    calls = {"n": 0}
    for op in ops:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @given(case=op.as_strategy(generation_mode=mode))
            @hsettings(max_examples=20, deadline=None, database=None,
                       suppress_health_check=list(HealthCheck))
            def check(case):
                response = case.call(base_url=live_gateway, session=session, timeout=10)
                calls["n"] += 1
                assert response.status_code < 500, (case.method, case.formatted_path, case.query, response.text)

            try:
                check()
            except Unsatisfiable:
                # an operation without inputs has no invalid request to generate
                assert mode is GenerationMode.NEGATIVE, op.label
    assert calls["n"] > 200
