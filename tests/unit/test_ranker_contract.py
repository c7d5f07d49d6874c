"""One contract over every recommender (models/ranker.py): what `rank` promises, checked alike."""
from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import torch

from models.online.rec_model import OnlineRecModel
from models.online.serving import ServingRecModel
from models.ranker import BatchRanker, Ranker
from models.rec.embedding_version import EmbeddingRecVersion
from models.rec.neural_version import NeuralRecVersion
from models.rec.online_neural import OnlineSASRec, OnlineSASRecConfig
from models.rec.online_transitions import OnlineTransitions
from models.rec.sasrec import SASRec, SASRecConfig
from tests.unit.online_streams import batches, chain_stream, small_model

SAMPLES = chain_stream(200)
ITEMS = sorted({t for _, t in SAMPLES} | {i for h, _ in SAMPLES for i in h})


def _online() -> OnlineRecModel:
    model = small_model()
    for batch in batches(SAMPLES, 32):
        model.learn(batch)
    return model


def _serving() -> Ranker:
    return ServingRecModel.from_model(_online(), version=1)


def _transitions() -> Ranker:
    model = OnlineTransitions()
    for history, target in SAMPLES:
        model.learn_sequence([*history, target][-2:])
    return model


def _embedding() -> Ranker:
    vectors = torch.randn(len(ITEMS), 8, generator=torch.Generator().manual_seed(0))
    return EmbeddingRecVersion.build("v1", ITEMS, vectors)


def _online_neural() -> Ranker:
    torch.manual_seed(0)
    checkpoint = SASRec(SASRecConfig(n_items=len(ITEMS), dim=8, layers=1, heads=1, max_len=4, dropout=0.0))
    model = OnlineSASRec.warm_start(checkpoint, ITEMS, OnlineSASRecConfig(negatives=8, num_shards=2))
    for batch in batches(SAMPLES, 32):
        model.learn([[*history, target] for history, target in batch])
    return model


def _neural_version() -> Ranker:
    model = _online_neural()
    assert isinstance(model, OnlineSASRec)
    return NeuralRecVersion.from_model(model, "v1", blend=0.2)


RANKERS: dict[str, Callable[[], Ranker]] = {
    "online": _online, "serving": _serving, "transitions": _transitions, "embedding": _embedding,
    "online_neural": _online_neural, "neural_version": _neural_version,
}


@pytest.fixture(scope="module", params=sorted(RANKERS))
def ranker(request: pytest.FixtureRequest) -> Ranker:
    return RANKERS[request.param]()


def _check(ranking: list[tuple[str, float]], k: int) -> list[str]:
    assert len(ranking) <= k
    scores = [s for _, s in ranking]
    assert scores == sorted(scores, reverse=True), ranking
    items = [i for i, _ in ranking]
    assert len(set(items)) == len(items), ranking
    return items


def test_it_is_a_ranker(ranker):
    assert isinstance(ranker, Ranker)


@pytest.mark.parametrize("k", [1, 3, 10])
def test_sorted_best_first_and_at_most_k(ranker, k):
    items = _check(ranker.rank(["x1", "y1"], k), k)
    assert items, "a known history must rank something"


def test_exclusions_are_honoured_and_history_is_not_excluded_unless_asked(ranker):
    full = _check(ranker.rank(["x1", "y1"], 10), 10)
    rest = _check(ranker.rank(["x1", "y1"], 10, exclude=full[:1]), 10)
    assert full[0] not in rest and rest[: len(full) - 1] == full[1:]  # the others keep their order
    assert "y1" in full  # the last history item is rankable: nothing leaves it out but `exclude`


def test_filters_are_honoured(ranker):
    full = _check(ranker.rank(["x1", "y1"], 10), 10)
    kept = _check(ranker.rank(["x1", "y1"], 10, allow=lambda item: item != full[0]), 10)
    assert full[0] not in kept and kept[: len(full) - 1] == full[1:]


def test_inputs_are_left_unchanged(ranker):
    history, exclude = ["x1", "y1"], ["z1"]
    before = copy.deepcopy((history, exclude))
    ranker.rank(history, 5, exclude=exclude)
    assert (history, exclude) == before


BATCHED = ("embedding", "neural_version")  # the gateway's rank batcher calls their rank_many


@pytest.mark.parametrize("name", BATCHED)
def test_rank_many_equals_rank_alone(name):
    ranker = RANKERS[name]()
    assert isinstance(ranker, BatchRanker)
    requests = [(["x1", "y1"], 5, [], None), (["x2"], 3, ["y2"], lambda i: i != "z2")]
    together = ranker.rank_many(requests)
    alone = [ranker.rank(h, k, e, a) for h, k, e, a in requests]
    assert [[i for i, _ in r] for r in together] == [[i for i, _ in r] for r in alone]
    # one product for the batch, one per user alone: float32 sums may differ in the last bits
    assert [[s for _, s in r] for r in together] == [pytest.approx([s for _, s in r], rel=1e-5) for r in alone]
