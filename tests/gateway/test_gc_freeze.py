"""What the gateway holds long is out of the cyclic GC's walk: cached recommendation lists are
plain data it stops tracking, and model versions frozen at their install are still freed when
dropped (app/gateway/gc_freeze.py)."""
from __future__ import annotations

import gc
import random
import time

import torch

from app.gateway.gc_freeze import freeze_long_lived
from app.gateway.serving import Filters, ServingModels
from models.online.rec_model import OnlineRecConfig, OnlineRecModel
from models.online.serving import serving_for
from models.online.versions import full_version
from models.rec.embedding_version import EmbeddingRecVersion
from tables import user_profiles
from tests.gateway.conftest import fill, profile


def embedding_model(name: str) -> EmbeddingRecVersion:
    items = ["a", "b", "c", "d", "t1", "t2"]
    return EmbeddingRecVersion.build(name, items, torch.randn(len(items), 8, generator=torch.Generator().manual_seed(1)))


async def test_cached_recommendation_lists_are_untracked_and_a_new_model_invalidates_them(read_model):
    fill(read_model)
    read_model.apply(user_profiles.NAME, "me", profile(["a"]))
    serving = ServingModels(read_model)
    serving.install(embedding_model("rec-embeddings-v1"))
    for user in ("me", "s0", "nobody"):  # personal, personal, trending-filled
        await serving.recommend(user, 5, Filters())
    assert len(serving.cache) == 3
    for _ in range(4):  # a collection untracks a tuple whose items it has already untracked:
        gc.collect()    # a level of nesting each here (the gateway's young collections, in allocation order, do all at once)
    tracked = [key for key, entry in serving.cache._entries.items() if gc.is_tracked(entry)]
    assert tracked == []
    hits = serving.cache.hits
    await serving.recommend("me", 5, Filters())
    assert serving.cache.hits == hits + 1
    serving.install(embedding_model("rec-embeddings-v2"))  # no model object in the stamp: the generation says it
    ranking = await serving.recommend("me", 5, Filters())
    assert serving.cache.hits == hits + 1 and ranking.version.startswith("rec-embeddings-v2")


def tracked_objects_of(build) -> int:  # type: ignore[no-untyped-def]
    gc.collect()
    before = len(gc.get_objects())
    held = build()
    gc.collect()
    n = len(gc.get_objects()) - before
    del held
    return n


def test_versions_frozen_at_install_are_freed_when_dropped(read_model):
    rng = random.Random(1)
    model = OnlineRecModel(OnlineRecConfig(num_shards=1, capacity=500, dim=8))
    serving = ServingModels(read_model, cache_size=0)

    def next_version(number: int):  # type: ignore[no-untyped-def]
        model.learn([([f"i{rng.randrange(200)}" for _ in range(3)], f"i{rng.randrange(200)}") for _ in range(400)])
        return serving_for(None, full_version(model, None, number, number - 1, time.time(), {}))

    try:
        frozen = []
        for number in range(1, 13):
            serving.install_online(next_version(number))  # the previous version is dropped here
            freeze_long_lived(f"version {number}")
            frozen.append(gc.get_freeze_count())
        one_version = tracked_objects_of(lambda: next_version(13))
        assert one_version > 500  # a version is many tracked objects: a leak of each would show
        # Every version from the 4th on (the learner's items all seen by then) adds only its
        # own objects, and drops the previous one's: the frozen count stays level.
        assert frozen[-1] - frozen[3] < one_version / 2, (frozen, one_version)
    finally:
        gc.unfreeze()


def test_a_version_install_freezes_without_counting_the_frozen(monkeypatch):
    """gc.get_freeze_count walks every frozen object (88 ms for 3M on this machine): a stall of
    the whole gateway if it ran at each version install, as it once did. Start-up counts."""
    calls = []
    monkeypatch.setattr(gc, "get_freeze_count", lambda: calls.append(1) or 0)
    try:
        freeze_long_lived("version 1 installed")
        assert calls == []
        freeze_long_lived("changelogs caught up", full=True)
        assert calls == [1]
    finally:
        gc.unfreeze()


async def test_a_gateway_freezes_what_it_holds_before_each_build_and_after_each_install(client, monkeypatch):
    """A full collection that a build's allocations start then walks the build's objects only
    (one walked everything since the last install for 115 ms in bench/serve.py's live pass)."""
    from tests.gateway.conftest import follower_of, publish, versions

    follower = follower_of(client.server.app)
    frozen_while = []
    real_freeze = gc.freeze
    monkeypatch.setattr(gc, "freeze", lambda: frozen_while.append(sorted(follower.held)) or real_freeze())
    try:
        for version in versions(2):
            assert await publish(follower, version)
    finally:
        gc.unfreeze()
    assert frozen_while == [[], [1], [1], [2]]  # before version 1's build, at its install, then version 2's
