"""`streamrank gateway` listens with the settings' accept backlog (aiohttp's own is 128: a burst
of new connections overflowed it and waited a second per dropped handshake)."""
import argparse

from app.jobs import gateway


def test_the_gateway_listens_with_the_configured_backlog(monkeypatch):
    seen = {}
    monkeypatch.setenv("STREAMRANK_GATEWAY_LISTEN_BACKLOG", "2048")
    monkeypatch.setattr(gateway, "init_app", lambda settings: "app")
    monkeypatch.setattr(gateway.asyncio, "set_event_loop_policy", lambda policy: None)  # not for the rest of the suite
    monkeypatch.setattr(gateway.web, "run_app", lambda app, **kwargs: seen.update(kwargs))
    assert gateway.run(argparse.Namespace(host=None, port=None)) == 0
    assert seen["backlog"] == 2048 and seen["reuse_port"] is True
