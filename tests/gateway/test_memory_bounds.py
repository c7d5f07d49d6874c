"""Memory stays bounded under hostile traffic: many unique junk keys leave every per-request
cache at its bound, and a filter nothing passes examines a bounded number of candidates."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch

from app.gateway.app import init_app
from app.gateway.keys import SERVING
from app.gateway.rec_cache import StampedCache
from app.gateway.serving import Filters, ServingModels
from app.metrics import sample_sum
from models.rec.embedding_version import EmbeddingRecVersion
from tables import user_profiles
from tests.gateway.conftest import fill, profile, put_item


def junk_entry(n: int, k: int, stamp: tuple) -> tuple[tuple, tuple, tuple]:
    """A cache entry as serving makes one, for a junk user id of a few hundred characters."""
    key = (f"junk-{n:06d}-" + "x" * (n % 240), k, False, None, None, None)
    value = (tuple((f"item-{n}-{j}", 1.0 / (j + 1)) for j in range(k)), f"transitions-{n}", "trending")
    return key, stamp, value


def test_unique_junk_keys_leave_the_cache_at_its_byte_bound():
    stamp = (None, object(), None, 7, 0)
    cache: StampedCache[tuple] = StampedCache(max_entries=1_000_000, max_bytes=200_000)
    for n in range(5000):
        cache.put(*junk_entry(n, 10, stamp))
        assert cache.bytes <= cache.max_bytes
    assert 0.9 * cache.max_bytes < cache.bytes  # full, not emptied
    held = list(cache._entries.items())
    assert cache.bytes == sum(size for _, (_, _, size) in held)
    assert held[-1][0][0].startswith("junk-004999")  # the newest stay, the oldest went
    # what a lookup touches is kept over what it does not
    recent_key, (_, recent_value, _) = held[0]
    assert cache.get(recent_key, stamp) is recent_value
    for n in range(5000, 5000 + len(held) // 2):
        cache.put(*junk_entry(n, 10, stamp))
    assert cache.get(recent_key, stamp) is recent_value and cache.get(held[1][0], stamp) is None


def test_the_entry_limit_still_holds_and_replacing_a_key_does_not_count_it_twice():
    stamp = (None,)
    cache: StampedCache[tuple] = StampedCache(max_entries=50, max_bytes=10**9)
    for n in range(500):
        cache.put(*junk_entry(n, 3, stamp))
    assert len(cache) == 50
    key, _, value = junk_entry(499, 3, stamp)
    before = cache.bytes
    cache.put(key, stamp, value)
    assert len(cache) == 50 and cache.bytes == before
    off = StampedCache(10, max_bytes=0)
    off.put(*junk_entry(1, 1, stamp))
    assert len(off) == 0 and off.bytes == 0


@pytest.mark.parametrize("k", [1, 10, 100])
def test_the_byte_estimate_is_what_entries_really_hold(k):
    """Measured with tracemalloc, entries whose strings are their own: the estimate may
    count more (item ids are often shared with the catalog), never much less."""
    stamp = (None, object(), None, 7, 0)
    cache: StampedCache[tuple] = StampedCache(max_entries=10**9, max_bytes=10**12)
    n_entries = min(3000, 100_000 // k)  # enough that free lists (reused, untraced) are a small part
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        for n in range(n_entries):
            cache.put(*junk_entry(n, k, stamp))
        real = tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()
    # never much less (the cache would outgrow its budget); more only makes it hold fewer entries
    assert 0.9 * real <= cache.bytes <= 2.0 * real, (cache.bytes / n_entries, real / n_entries)


async def test_recommendations_for_many_junk_users_stay_within_the_cache_bytes(aiohttp_client, settings, sink,
                                                                             read_model):
    app = init_app(settings.replace(recommend_cache_bytes=300_000), sink=sink, read_model=read_model,
                   follow_changelogs=False)
    client = await aiohttp_client(app)
    fill(read_model)
    cache = app[SERVING].cache
    for n in range(600):
        user = f"junk-{n}-" + "z" * 240
        r = await client.get(f"/v1/recommend?user_id={user}&k=100&category=c{n}")
        assert r.status == 200
        assert cache.bytes <= 300_000
    assert len(cache) < 600 and cache.bytes > 0.8 * 300_000
    metrics = await (await client.get("/metrics")).text()
    assert sample_sum(metrics, "streamrank_gateway_rec_cache_bytes") == cache.bytes > 0
    assert sample_sum(metrics, "streamrank_gateway_rec_cache_lookups_total", result="miss") == cache.misses > 0


def catalog_with_embeddings(read_model, n: int, category_every: int) -> EmbeddingRecVersion:
    """n items, every `category_every`-th in category "rare", the rest "common"; one model over them."""
    for i in range(n):
        put_item(read_model, f"i{i}", f"item {i}", category="rare" if i % category_every == 0 else "common",
                 stock=1, price=float(i % 50))
    vectors = torch.randn(n, 16, generator=torch.Generator().manual_seed(3))
    return EmbeddingRecVersion.build("rec-embeddings-v1", [f"i{i}" for i in range(n)], vectors)


def counting_allow(serving: ServingModels, monkeypatch) -> list[int]:
    calls = [0]
    original = ServingModels.allow

    def allow(self, filters):
        ok = original(self, filters)
        if ok is None:
            return None

        def counted(item_id: str) -> bool:
            calls[0] += 1
            return ok(item_id)

        return counted

    monkeypatch.setattr(ServingModels, "allow", allow)
    return calls


async def test_a_filter_nothing_passes_examines_a_bounded_number_of_candidates(read_model, monkeypatch):
    serving = ServingModels(read_model, cache_size=0, filter_scan=300)
    serving.install(catalog_with_embeddings(read_model, 5000, category_every=10))
    for u in range(30):  # transitions reach many items from i0
        read_model.apply(user_profiles.NAME, f"s{u}", profile(["i0", *(f"i{u * 100 + j}" for j in range(1, 60))]))
    calls = counting_allow(serving, monkeypatch)
    nothing = Filters(category="no such category")
    # two rankings (transitions, embedding); each examined to 4 x depth, then to the cap
    for k in (1, 10, 100):
        assert (await serving.similar("i0", k, nothing)).items == []
        assert 0 < calls[0] <= 2 * (300 + 300), calls[0]
        calls[0] = 0
    read_model.apply(user_profiles.NAME, "me", profile(["i0", "i5"]))
    assert (await serving.recommend("me", 10, nothing)).items == []
    assert calls[0] <= 2 * (300 + 300) + 100  # and the trending fill: at most max(4k, 100) items


async def test_filtered_answers_are_what_the_models_give_with_the_filter_when_enough_pass(read_model):
    serving = ServingModels(read_model, cache_size=0, embedding_blend=1.0)
    model = catalog_with_embeddings(read_model, 3000, category_every=20)  # 5% pass "rare"
    serving.install(model)
    for filters in (Filters(category="rare"), Filters(category="common", max_price=10.0), Filters(in_stock=True)):
        allow = serving.allow(filters)
        for item in ("i1", "i42", "i2999"):
            got = (await serving.similar(item, 10, filters)).items
            want = model.rank([item], 10, exclude=[item], allow=allow)
            assert [i for i, _ in got] == [i for i, _ in want], filters
            assert len(got) == 10


async def test_similar_for_unknown_junk_items_with_filters_answers_fast_and_empty(client, read_model):
    fill(read_model)
    for n in range(200):
        r = await client.get(f"/v1/items/junk-{n}-{'q' * 200}/similar?k=100&category=none&in_stock=true")
        assert r.status == 200 and (await r.json())["items"] == []


def test_encoder_query_cache_stays_at_its_size_with_copies_of_its_own():
    from models.encoder import DIM, TextEncoder

    encoder = TextEncoder(max_length=16, cache_size=8, device="cpu")
    for n in range(0, 40, 4):
        encoder.encode_queries([f"junk query {n + j}" for j in range(4)])
        assert len(encoder._cache) <= 8
    assert len(encoder._cache) == 8
    # each cached vector owns its 384 floats, not a view of its batch's whole output
    assert {v.untyped_storage().nbytes() for v in encoder._cache.values()} == {DIM * 4}
    assert np.allclose(encoder.encode_queries(["junk query 39"])[0], encoder.encode(["junk query 39"])[0], atol=1e-5)
