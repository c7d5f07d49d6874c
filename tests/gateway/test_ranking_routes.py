from tables.wire.records import CatalogChange
from tables import catalog, item_stats, user_profiles
from tests.gateway.conftest import fill, profile, put_item


async def test_personal_recommendations_follow_what_people_took_next(client, read_model):
    fill(read_model)
    read_model.apply(user_profiles.NAME, "me", profile(["x", "a"]))
    body = await (await client.get("/v1/recommend?user_id=me&k=2")).json()
    assert body["strategy"] == "personal"
    assert [i["item_id"] for i in body["items"]] == ["b", "c"]
    assert body["items"][0]["title"] == "Cordless drill 18V"
    assert body["model_version"].startswith("transitions-") and len(body["request_id"]) == 32


async def test_a_new_event_changes_the_next_answer(client, read_model):
    fill(read_model)
    read_model.apply(user_profiles.NAME, "me", profile(["a"]))
    before = await (await client.get("/v1/recommend?user_id=me&k=1")).json()
    for n in range(3):  # c becomes what people take after a
        read_model.apply(user_profiles.NAME, f"new{n}", profile(["a", "c"]))
    after = await (await client.get("/v1/recommend?user_id=me&k=1")).json()
    assert before["items"][0]["item_id"] == "b" and after["items"][0]["item_id"] == "c"
    assert before["model_version"] != after["model_version"]


async def test_bought_items_are_excluded_and_filters_apply(client, read_model):
    fill(read_model)
    read_model.apply(user_profiles.NAME, "me", profile(["a", "b"], purchased={"b"}))
    items = [i["item_id"] for i in (await (await client.get("/v1/recommend?user_id=me&k=10")).json())["items"]]
    assert "b" not in items and items[0] == "d"
    in_stock = await (await client.get("/v1/items/a/similar?in_stock=true")).json()
    assert [i["item_id"] for i in in_stock["items"]] == ["c"]  # b has no stock
    cheap = await (await client.get("/v1/items/a/similar?max_price=60&category=tools")).json()
    assert [i["item_id"] for i in cheap["items"]] == ["c"]


async def test_unknown_users_get_trending_items_not_an_error(client, read_model):
    fill(read_model)
    r = await client.get("/v1/recommend?user_id=stranger&k=2")
    body = await r.json()
    assert r.status == 200 and body["strategy"] == "trending"
    assert [i["item_id"] for i in body["items"]] == ["t1", "t2"]


async def test_search_matches_catalog_text_and_follows_catalog_changes(client, read_model):
    fill(read_model)
    body = await (await client.get("/v1/search?q=drill")).json()
    assert {i["item_id"] for i in body["items"]} == {"b", "c"}
    read_model.apply(catalog.NAME, "c", catalog.to_item(CatalogChange("delete", "c", 2.0)))
    body = await (await client.get("/v1/search?q=drill")).json()
    assert [i["item_id"] for i in body["items"]] == ["b"]
    put_item(read_model, "e", "Drill bits set")
    assert "e" in [i["item_id"] for i in (await (await client.get("/v1/search?q=drill bits")).json())["items"]]


async def test_search_personalisation_reorders_near_ties(client, read_model):
    fill(read_model)
    put_item(read_model, "c", "Cordless drill 18V", stock=5)  # now b and c tie on text
    read_model.apply(user_profiles.NAME, "fan_of_c", profile(["a", "c", "a", "c"]))
    for user, want in (("fan_of_c", "c"),):
        body = await (await client.get(f"/v1/search?q=cordless drill&user_id={user}")).json()
        assert body["items"][0]["item_id"] == want


async def test_once_a_learner_version_serves_the_gateway_drops_its_own_transitions_and_personalises_by_it(client, read_model):
    from app.gateway.keys import SERVING
    from models.online.click_model import OnlineClickModel
    from models.online.rec_model import OnlineRecConfig, OnlineRecModel
    from models.online.serving import ServingRecModel
    from models.online.versions import LearnerConfig, OnlineLearner

    serving = client.server.app[SERVING]
    fill(read_model)
    put_item(read_model, "c", "Cordless drill 18V", stock=5)  # b and c tie on text
    for n in range(10):  # the gateway learns that people take c after a
        read_model.apply(user_profiles.NAME, f"c{n}", profile(["a", "c"]))
    read_model.apply(user_profiles.NAME, "fan", profile(["a"]))

    async def top() -> str:
        return (await (await client.get("/v1/search?q=cordless drill&user_id=fan")).json())["items"][0]["item_id"]

    assert await top() == "c" and serving.transitions.events > 0  # (c is also the better text match)
    learner = OnlineLearner(OnlineRecModel(OnlineRecConfig(dim=8, num_shards=1, capacity=1000, negatives=8)),
                            OnlineClickModel(), LearnerConfig(min_samples=1, guard_ratio=0.01))
    learner.step([(["a"], "b")] * 80)  # the learner has seen people take b after a
    learner.propose(1.0)
    serving.install_online(ServingRecModel.from_model(learner.serving_rec, version=1))
    assert serving.transitions.events == 0  # emptied: the version holds its own
    read_model.apply(user_profiles.NAME, "late", profile(["a", "c", "a", "c"]))
    assert serving.transitions.events == 0  # and no longer learned
    assert await top() == "b"  # personalised by the version's counts, over the better text match


async def test_bad_parameters_get_400_with_a_message(client):
    for url in ("/v1/search", "/v1/search?q=%20", "/v1/recommend?k=0", "/v1/recommend?k=abc",
                "/v1/recommend?in_stock=maybe", "/v1/recommend?max_price=cheap", "/v1/items/a/similar?k=101",
                "/v1/search?q=" + "x" * 600):
        r = await client.get(url)
        assert r.status == 400, url
        assert (await r.json())["error"]


async def test_openapi_describes_every_route(client):
    spec = await (await client.get("/openapi.json")).json()
    routes = {r.resource.canonical for r in client.app.router.routes() if r.method != "HEAD"}
    assert routes == set(spec["paths"])


async def items_of(client, url):
    return [i["item_id"] for i in (await (await client.get(url)).json())["items"]]


async def test_cached_recommendations_follow_every_change_they_depend_on(client, read_model):
    from app.gateway.keys import SERVING
    from models.rec.embedding_version import EmbeddingRecVersion

    serving = client.server.app[SERVING]
    fill(read_model)
    read_model.apply(user_profiles.NAME, "me", profile(["x", "a"]))
    first = await items_of(client, "/v1/recommend?user_id=me&k=2")
    hits = serving.cache.hits
    assert await items_of(client, "/v1/recommend?user_id=me&k=2") == first and serving.cache.hits == hits + 1
    # the user's own event: a new profile record, so the list is ranked again
    read_model.apply(user_profiles.NAME, "me", profile(["x", "a", "b"], purchased={"b"}))
    assert "b" not in await items_of(client, "/v1/recommend?user_id=me&k=2")
    # another shopper's event changes the gateway's transitions (before any learner version)
    read_model.apply(user_profiles.NAME, "me", profile(["a"]))
    assert (await items_of(client, "/v1/recommend?user_id=me&k=1")) == ["b"]
    for n in range(3):
        read_model.apply(user_profiles.NAME, f"new{n}", profile(["a", "c"]))
    assert (await items_of(client, "/v1/recommend?user_id=me&k=1")) == ["c"]
    # a catalog change reaches filtered lists: c goes out of stock
    assert await items_of(client, "/v1/recommend?user_id=me&k=1&in_stock=true") == ["c"]
    put_item(read_model, "c", "Hammer drill", stock=0, price=49.0, category="tools")
    assert "c" not in await items_of(client, "/v1/recommend?user_id=me&k=3&in_stock=true")
    assert await items_of(client, "/v1/recommend?user_id=me&k=1&in_stock=true") != ["c"]
    # a new model version is ranked with at once
    vectors = {"a": [1.0, 0.0], "d": [1.0, 0.05], "b": [0.0, 1.0], "c": [0.0, 1.0]}
    serving.install(EmbeddingRecVersion.build("rec-embeddings-v9", list(vectors), __import__("torch").tensor(list(vectors.values()))))
    body = await (await client.get("/v1/recommend?user_id=me&k=1")).json()
    assert body["model_version"].startswith("rec-embeddings-v9")


async def test_the_cache_can_be_turned_off(aiohttp_client, settings, sink, read_model):

    from app.gateway.app import init_app
    from app.gateway.keys import SERVING

    app = init_app(settings.replace(recommend_cache_size=0), sink=sink, read_model=read_model, follow_changelogs=False)
    client = await aiohttp_client(app)
    fill(read_model)
    read_model.apply(user_profiles.NAME, "me", profile(["a"]))
    for _ in range(2):
        assert await items_of(client, "/v1/recommend?user_id=me&k=1") == ["b"]
    assert app[SERVING].cache.hits == 0 and len(app[SERVING].cache) == 0


async def test_trending_follows_popularity_as_it_decays_and_skips_deleted_items(client, read_model):
    fill(read_model)  # t1: 5 purchases, t2: 3, both at t=10
    assert await items_of(client, "/v1/recommend?user_id=stranger&k=2") == ["t1", "t2"]
    # t3 is bought less often but much later: at the newest time its decayed popularity leads
    half_life = read_model.settings.features.popularity_half_life_s
    s = item_stats.empty()
    for k in range(2):  # 3 half-lives later: t1's 5 count 5/8 by then
        s = item_stats.apply_event(s, "purchase", 10.0 + 3 * half_life, 0, k, half_life, 3600.0)
    read_model.apply(item_stats.NAME, "t3", s)
    read_model._popular_at = -1.0  # the trending list is recomputed at most once a second
    assert await items_of(client, "/v1/recommend?user_id=stranger&k=2") == ["t3", "t1"]
    put_item(read_model, "t3", "gone")
    read_model.apply(catalog.NAME, "t3", catalog.to_item(CatalogChange("delete", "t3", 2.0)))
    read_model._popular_at = -1.0
    assert await items_of(client, "/v1/recommend?user_id=stranger&k=2") == ["t1", "t2"]


async def test_concurrent_recommendations_share_one_embedding_pass_and_match_one_by_one(
        aiohttp_client, settings, sink, read_model):
    import asyncio

    import torch

    from app.gateway.app import init_app
    from app.gateway.keys import SERVING
    from models.rec.embedding_version import EmbeddingRecVersion

    app = init_app(settings.replace(recommend_cache_size=0), sink=sink, read_model=read_model, follow_changelogs=False)
    client = await aiohttp_client(app)
    serving = app[SERVING]
    ids = [f"i{n}" for n in range(300)]
    serving.install(EmbeddingRecVersion.build("rec-embeddings-v3", ids, torch.randn(300, 8, generator=torch.Generator().manual_seed(1))))
    for n in range(40):
        read_model.apply(user_profiles.NAME, f"u{n}", profile([f"i{n}", f"i{n + 1}", f"i{2 * n}"]))
    urls = [f"/v1/recommend?user_id=u{n}&k=5" for n in range(40)]
    one_by_one = [await items_of(client, url) for url in urls]
    assert serving.batcher.batches == serving.batcher.requests == 40
    together = await asyncio.gather(*(items_of(client, url) for url in urls))
    assert list(together) == one_by_one
    assert serving.batcher.requests == 80 and serving.batcher.batches < 80  # some shared a pass


async def test_trending_lists_are_cached_until_trending_is_recomputed(client, read_model):
    from app.gateway.keys import SERVING

    serving = client.server.app[SERVING]
    fill(read_model)
    assert await items_of(client, "/v1/recommend?user_id=stranger&k=2") == ["t1", "t2"]
    hits = serving.cache.hits
    assert await items_of(client, "/v1/recommend?user_id=stranger&k=2") == ["t1", "t2"]
    assert serving.cache.hits == hits + 1
    s = item_stats.empty()
    for k in range(9):
        s = item_stats.apply_event(s, "purchase", 10.0, 0, k, 86400.0, 3600.0)
    read_model.apply(item_stats.NAME, "t9", s)
    read_model._popular_at = -1.0  # a second later
    assert await items_of(client, "/v1/recommend?user_id=stranger&k=2") == ["t9", "t1"]
