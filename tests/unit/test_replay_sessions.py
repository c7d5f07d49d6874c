"""Session replay without Kafka: local BM25 ranking, the live-gateway ranker, the replay loop."""
import socket

import pytest
from aiohttp import web

from app.jobs.replay import simulate_sessions
from app.search_sessions import SessionPlan, SessionSimulator, training_queries
from app.session_rankers import GatewayRanker, LocalRanker
from models.errors import GatewayUnavailable
from tests.unit.test_search_sessions import CALIB, DEV, catalog


async def test_local_ranker_ranks_titles_with_bm25():
    data = catalog()
    async with LocalRanker(data) as ranker:
        results = await ranker.search("Widget 7", "hd-u0", 5)
    assert set(results.item_ids[:3]) == {"p21", "p22", "p23"}  # the titles that name "widget 7"
    assert len(results.item_ids) == 5 and results.model_version == LocalRanker.VERSION


async def test_replay_loop_sends_every_session_event_with_the_local_ranker():
    data = catalog()
    sim = SessionSimulator(data, training_queries(data, DEV, CALIB), SessionPlan(run="t", k=5))
    sent = []

    async def send(event):
        sent.append(event)

    async with LocalRanker(data) as ranker:
        summary = await simulate_sessions(sim, ranker, send, sessions=30)
    counts = summary.as_dict()
    assert counts["sessions"] == 30 == sum(e.type == "search" for e in sent)
    assert counts["impressions"] == 150 == sum(e.type == "impression" for e in sent)
    assert counts["clicks"] == sum(e.type == "click" for e in sent) > 0
    assert len({e.event_id for e in sent}) == len(sent)
    assert len({e.request_id for e in sent}) == 30  # one response per session, shared by its events


async def test_gateway_ranker_reads_items_and_request_id(aiohttp_server):
    seen = {}

    async def search(request):
        seen.update(request.query)
        return web.json_response({"items": [{"item_id": "p1", "score": 2.0}, {"item_id": "p2", "score": 1.0}],
                                  "request_id": "abc", "model_version": "v3"})

    app = web.Application()
    app.router.add_get("/healthz", lambda request: web.json_response({"status": "ok"}))
    app.router.add_get("/v1/search", search)
    server = await aiohttp_server(app)
    async with GatewayRanker(str(server.make_url("/"))) as ranker:
        results = await ranker.search("angle bracket", "hd-u3", 10)
    assert (results.item_ids, results.request_id, results.model_version) == (["p1", "p2"], "abc", "v3")
    assert seen == {"q": "angle bracket", "user_id": "hd-u3", "k": "10"}


async def test_unreachable_gateway_is_a_clear_error_naming_the_url():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with pytest.raises(GatewayUnavailable, match=f"cannot reach the gateway at {url}/healthz"):
        async with GatewayRanker(url):
            pass


def test_the_demo_names_the_first_sessions_shopper_and_its_best_product(tmp_path):
    from app.jobs.replay import demo_shopper
    from app.search_sessions import session_shopper
    from app.settings import Settings
    from models.data.homedepot import load_homedepot
    from tests.gateway.test_search_finetune_swap import write_judgments

    (tmp_path / "homedepot").mkdir()
    path = write_judgments(tmp_path / "homedepot" / "train.csv.gz")
    settings = Settings().replace(data_dir=tmp_path, state_dir=tmp_path / "state")
    user, item = demo_shopper(settings, users=7, seed=3)
    assert user == session_shopper(SessionPlan(users=7, seed=3), 0)
    data = load_homedepot(path)
    sim = SessionSimulator(data, training_queries(data, DEV, CALIB), SessionPlan(users=7, seed=3))
    assert data.judgments[sim.session(0).query][item] == 3.0  # its most relevant product
