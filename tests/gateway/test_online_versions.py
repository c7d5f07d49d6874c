"""The gateway applies the learner's versions atomically, and the admin API is token-protected."""
import asyncio
import dataclasses
from functools import partial

import orjson
import pytest

from app.gateway.app import init_app
from app.gateway.keys import METRICS, READ_MODEL, SERVING
from tables.wire.updates import decode, read_command, signing_key
from models.online.click_model import ClickSample, OnlineClickModel
from models.online.rec_model import OnlineRecConfig, OnlineRecModel
from models.online.versions import LearnerConfig, OnlineLearner, full_version
from tests.gateway.conftest import follower_of, publish, shopper, until, versions


async def test_every_answer_comes_from_one_whole_version_while_versions_arrive(aiohttp_client, settings, sink, read_model):
    # no grace for cached lists: each version must serve at once (the grace is tested below)
    app = init_app(settings.replace(recommend_online_staleness_s=0.0), sink=sink, read_model=read_model,
                   follow_changelogs=False)
    client = await aiohttp_client(app)
    shopper(app[READ_MODEL])
    follower = follower_of(app)
    published = versions(6)
    answers = []
    done = asyncio.Event()

    async def hammer():
        while not done.is_set():
            body = await (await client.get("/v1/recommend?user_id=u&k=1")).json()
            answers.append((body["model_version"], body["items"][0]["item_id"] if body["items"] else None))

    def answered_by(number: int) -> bool:
        return any(v.endswith(f"online-v{number}") for v, _ in answers)

    tasks = [asyncio.create_task(hammer()) for _ in range(8)]
    for version in published:
        assert await publish(follower, version)
        await until(partial(answered_by, follower.serving_version))  # requests ran on this version
    done.set()
    await asyncio.gather(*tasks)
    online = [(v, item) for v, item in answers if "online-v" in v]
    assert len({v for v, _ in online}) >= 3, "versions changed while requests ran"
    for version, item in online:
        number = int(version.rsplit("online-v", 1)[1])
        assert item == f"x{number}", (version, item)  # never the rows of one version with another's counts
    assert follower.serving_version == 6 and follower.recent == [3, 4, 5, 6]
    assert list(follower.held) == [6]  # the parent of the next delta; the others' models are dropped
    assert app[METRICS].online_version._value.get() == 6


async def test_a_cached_list_outlives_a_new_version_for_the_grace_and_a_rollback_ends_it(client):
    app = client.server.app
    assert app[SERVING].online_staleness_s == 30.0  # the default
    now = [1000.0]
    app[SERVING].clock = lambda: now[0]
    for user in ("u", "w"):
        shopper(app[READ_MODEL], user)
    follower = follower_of(app)
    first, second, third = versions(3)

    async def top(user: str = "u") -> tuple[str, str]:
        body = await (await client.get(f"/v1/recommend?user_id={user}&k=1")).json()
        return body["model_version"].rsplit("+", 1)[-1], body["items"][0]["item_id"]

    assert await publish(follower, first)
    assert await top("u") == await top("w") == ("online-v1", "x1")
    assert await publish(follower, second)
    assert await top() == ("online-v1", "x1")  # cached: version 2 came just now
    shopper(app[READ_MODEL], "w")  # w's own event (a new profile record): ranked again at once
    assert await top("w") == ("online-v2", "x2")
    now[0] += 29.0
    assert await top() == ("online-v1", "x1")
    now[0] += 2.0  # version 2 has served for longer than the grace
    assert await top() == ("online-v2", "x2")
    hits = app[SERVING].cache.hits
    assert await top() == ("online-v2", "x2") and app[SERVING].cache.hits == hits + 1  # cached in turn
    assert await publish(follower, dataclasses.replace(third, metrics={**third.metrics, "rollback_to": 1}))
    assert await top() == ("online-v3", "x3")  # a rollback: at once, no grace


async def test_a_delta_without_its_parent_is_refused_and_the_learner_is_asked_for_a_whole_version(client, sink, settings):
    app = client.server.app
    shopper(app[READ_MODEL])
    follower = follower_of(app)
    published = versions(3)
    await publish(follower, published[1])  # version 2 is a delta on 1, which never came
    assert follower.serving_version == 0
    assert app[METRICS].model_load_failures._value.get() == 1
    body = await (await client.get("/v1/recommend?user_id=u&k=1")).json()
    assert "online-v" not in body["model_version"]
    # Asked once, signed (the learner carries out only signed commands), for what it could not build.
    [(value, headers)] = zip(sink.commands, sink.command_headers)
    command = read_command(decode(value, headers, signing_key(settings)))
    assert (command.action, command.version) == ("republish", 2)
    await publish(follower, published[2])  # the next delta: refused too, and not asked for again so soon
    assert follower.serving_version == 0 and len(sink.commands) == 1
    assert app[METRICS].model_republish_requests._value.get() == 1
    learner = OnlineLearner(OnlineRecModel(OnlineRecConfig(dim=8, num_shards=1, capacity=1000, negatives=8)),
                            OnlineClickModel(), LearnerConfig(min_samples=1, guard_ratio=0.01))
    learner.step([(["a"], "x4")] * 80)
    learner.propose(1.0)
    whole = full_version(learner.serving_rec, learner.serving_click, 4, 3, 4.0, {"republished": "requested"})
    assert await publish(follower, whole) and follower.serving_version == 4  # the learner's answer
    body = await (await client.get("/v1/recommend?user_id=u&k=1")).json()
    assert body["model_version"] == "online-v4" and body["items"][0]["item_id"] == "x4"


@pytest.mark.parametrize("token, header, status", [
    ("", "Bearer x", 403), ("s3cret", None, 401), ("s3cret", "Bearer wrong", 401), ("s3cret", "Bearer s3cret", 202)])
async def test_admin_rollback_needs_the_token(aiohttp_client, settings, sink, read_model, token, header, status):

    from app.gateway.app import init_app
    client = await aiohttp_client(init_app(settings.replace(admin_token=token), sink=sink, read_model=read_model,
                                           follow_changelogs=False))
    headers = {"Authorization": header} if header else {}
    r = await client.post("/v1/admin/model", data=orjson.dumps({"action": "rollback", "version": 1}),
                          headers={**headers, "Content-Type": "application/json"})
    assert r.status == status, await r.text()
    assert "error" in await r.json() or status == 202
    if status == 202:  # signed: the learner refuses a command that did not come through here
        [(value, headers)] = zip(sink.commands, sink.command_headers)
        command = read_command(decode(value, headers, signing_key(settings)))
        assert (command.action, command.version) == ("rollback", 1)
    else:
        assert sink.commands == []


async def test_admin_command_validation(aiohttp_client, settings, sink, read_model):

    from app.gateway.app import init_app
    client = await aiohttp_client(init_app(settings.replace(admin_token="t"), sink=sink, read_model=read_model,
                                           follow_changelogs=False))
    auth = {"Authorization": "Bearer t"}
    for body in (b"nope", b"[]", b'{"action": "delete", "version": 1}', b'{"action": "rollback", "version": 0}',
                 b'{"action": "rollback", "version": true}'):
        r = await client.post("/v1/admin/model", data=body, headers={**auth, "Content-Type": "application/json"})
        assert r.status == 400, body
    status = await (await client.get("/v1/admin/model", headers=auth)).json()
    assert status == {"serving_version": 0, "held_versions": []}
    assert sink.commands == []


async def test_search_moves_up_what_people_click_more_than_its_position_explains(client):
    from tables.wire.records import CatalogChange
    from models.online.click_model import ClickSample
    from tables import catalog

    app = client.server.app
    for item, title in (("d1", "cordless drill red"), ("d2", "cordless drill blue")):  # a near tie on text
        app[READ_MODEL].apply(catalog.NAME, item, catalog.to_item(CatalogChange("upsert", item, 1.0, title=title)))
    before = [i["item_id"] for i in (await (await client.get("/v1/search?q=cordless+drill&k=2")).json())["items"]]
    learner = OnlineLearner(OnlineRecModel(OnlineRecConfig(dim=4, num_shards=1, capacity=100, negatives=4)),
                            OnlineClickModel(), LearnerConfig(min_samples=1, guard_ratio=0.01))
    loser, winner = before
    clicks = [ClickSample("u", winner, 1, 1), ClickSample("u", loser, 0, 0)] * 300
    for start in range(0, len(clicks), 50):
        learner.step([], clicks[start:start + 50])
    decision = learner.propose(1.0)
    follower = follower_of(app)
    await publish(follower, decision.version)
    after = [i["item_id"] for i in (await (await client.get("/v1/search?q=cordless+drill&k=2")).json())["items"]]
    assert after == [winner, loser]


async def test_the_ad_count_keys_a_version_brings_are_gauged(aiohttp_client, settings, sink, read_model):
    app = init_app(settings, sink=sink, read_model=read_model, follow_changelogs=False)
    await aiohttp_client(app)
    follower = follower_of(app)
    learner = OnlineLearner(OnlineRecModel(OnlineRecConfig(dim=8, num_shards=1, capacity=1000, negatives=8)),
                            OnlineClickModel(), LearnerConfig(min_samples=1, guard_ratio=0.01))
    learner.step([(["a"], "x1")] * 40, [ClickSample("u", "drill", 0, 1, "drill"), ClickSample("u", "saw", 1, 0, "drill"),
                                         ClickSample("u", "drill", 0, 0, None)] * 20)
    decision = learner.propose(1.0)
    assert decision.action == "promote", decision.reason
    assert await publish(follower, decision.version)
    # (drill, "drill"), (drill, "rec"), (saw, "drill") and the two items
    assert app[METRICS].ad_count_keys._value.get() == 5 == len(app[SERVING].online_click.ad_counts)
