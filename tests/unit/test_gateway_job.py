"""`streamrank gateway` listens with the settings' accept backlog (aiohttp's own is 128: a burst
of new connections overflowed it and waited a second per dropped handshake), and lets a thread
hold the GIL for the settings' switch interval only (a version build beside the event loop),
and asks the kernel for the settings' CPU slice before it starts a thread."""
import argparse
import sys

import pytest

from app.jobs import gateway


@pytest.fixture(autouse=True)
def slices_asked(monkeypatch):
    """What `run` asked `request_cpu_slice` for: the test process keeps the kernel's slice."""
    asked = []
    monkeypatch.setattr(gateway, "request_cpu_slice", lambda ms: asked.append(ms) or ms)
    return asked


def test_the_gateway_listens_with_the_configured_backlog(monkeypatch):
    seen = {}
    monkeypatch.setenv("STREAMRANK_GATEWAY_LISTEN_BACKLOG", "2048")
    monkeypatch.setattr(gateway, "init_app", lambda settings: "app")
    monkeypatch.setattr(gateway.asyncio, "set_event_loop_policy", lambda policy: None)  # not for the rest of the suite
    monkeypatch.setattr(gateway.web, "run_app", lambda app, **kwargs: seen.update(kwargs))
    assert gateway.run(argparse.Namespace(host=None, port=None)) == 0
    assert seen["backlog"] == 2048 and seen["reuse_port"] is True


def test_the_gateway_hands_the_gil_over_at_the_configured_interval(monkeypatch):
    monkeypatch.setenv("STREAMRANK_GATEWAY_GIL_SWITCH_MS", "0.25")
    monkeypatch.setattr(gateway, "init_app", lambda settings: "app")
    monkeypatch.setattr(gateway.asyncio, "set_event_loop_policy", lambda policy: None)
    monkeypatch.setattr(gateway.web, "run_app", lambda app, **kwargs: None)
    before = sys.getswitchinterval()
    try:
        gateway.run(argparse.Namespace(host=None, port=None))
        assert sys.getswitchinterval() == 0.00025
    finally:
        sys.setswitchinterval(before)  # process-wide: not for the rest of the suite


@pytest.mark.parametrize(("value", "asked"), [(None, 0.0), ("0.2", 0.2), ("0", 0.0)])
def test_the_gateway_asks_for_the_configured_cpu_slice(monkeypatch, slices_asked, value, asked):
    if value is not None:
        monkeypatch.setenv("STREAMRANK_GATEWAY_CPU_SLICE_MS", value)
    monkeypatch.setattr(gateway, "init_app", lambda settings: "app")
    monkeypatch.setattr(gateway.asyncio, "set_event_loop_policy", lambda policy: None)
    monkeypatch.setattr(gateway.web, "run_app", lambda app, **kwargs: slices_asked.append("serving"))
    before = sys.getswitchinterval()
    try:
        gateway.run(argparse.Namespace(host=None, port=None))
    finally:
        sys.setswitchinterval(before)
    assert slices_asked == [asked, "serving"]  # before the app (and its threads) start
