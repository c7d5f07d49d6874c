"""`streamrank gateway` listens with the settings' accept backlog (aiohttp's own is 128: a burst
of new connections overflowed it and waited a second per dropped handshake), and lets a thread
hold the GIL for the settings' switch interval only (a version build beside the event loop)."""
import argparse
import sys

from app.jobs import gateway


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
