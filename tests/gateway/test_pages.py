"""The pages and their files load without an API key, only the listed files are served, and
/ops/metrics reads the registries it names (the browser tests drive the pages themselves)."""
from __future__ import annotations

from app.gateway.app import init_app
from app.processes import free_port
from app.settings import Settings
from tests.gateway.conftest import MemorySink


async def keyed_client(aiohttp_client, tmp_path, **extra):
    settings = Settings().replace(state_dir=tmp_path, search_dense=False, api_keys="k1", worker_metrics_port=0,
                        learner_metrics_port=free_port(), **extra)  # nothing listens on the learner's port
    return await aiohttp_client(init_app(settings, sink=MemorySink(), follow_changelogs=False))


async def test_pages_and_their_files_load_without_a_key_and_the_api_still_needs_one(aiohttp_client, tmp_path):
    client = await keyed_client(aiohttp_client, tmp_path)
    for path, kind in (("/", "text/html"), ("/ops", "text/html"), ("/pages/shop.js", "text/javascript"),
                       ("/pages/ops.js", "text/javascript"), ("/pages/common.js", "text/javascript"),
                       ("/pages/pages.css", "text/css")):
        response = await client.get(path)
        assert response.status == 200, path
        assert response.content_type == kind, path
        assert "script-src" not in response.headers["Content-Security-Policy"]  # default-src 'self': no inline code
    assert (await client.get("/v1/items/popular")).status == 401
    assert (await client.get("/v1/items/popular", headers={"X-API-Key": "k1"})).status == 200


async def test_only_the_listed_page_files_are_served(aiohttp_client, tmp_path):
    client = await keyed_client(aiohttp_client, tmp_path)
    for name in ("handlers.py", "..%2Fpages.py", "%2E%2E%2F%2E%2E%2Fsettings.py", "shop.html.bak"):
        response = await client.get(f"/pages/{name}")
        assert response.status == 404, name
        assert "no page file" in (await response.json())["error"]


async def test_ops_metrics_reads_the_registries_and_says_which_cannot_be_read(aiohttp_client, tmp_path):
    client = await keyed_client(aiohttp_client, tmp_path)
    await client.post("/v1/events", json={"event_id": "e1", "user_id": "u", "type": "view", "item_id": "a"},
                      headers={"X-API-Key": "k1"})
    body = await (await client.get("/ops/metrics")).json()
    gateway = body["sources"]["gateway"]
    assert gateway["up"] and ["streamrank_http_events_accepted_total", {"kind": "events"}, 1.0] in gateway["samples"]
    assert not any(name.startswith("streamrank_http_request") for name, _, _ in gateway["samples"])  # not drawn
    assert body["sources"]["worker"] == {"up": False, "error": "no metrics port set", "samples": []}
    learner = body["sources"]["learner"]
    assert not learner["up"] and "127.0.0.1" in learner["error"] and learner["samples"] == []
    assert body["search_version"] is None
