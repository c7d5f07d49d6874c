"""HybridSearcher: built item by item (the gateway) it ranks exactly as built from the final catalog
(evaluation), it follows catalog changes, and int8 candidate selection keeps features exact."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models.hybrid_search import HybridSearcher
from models.search_ranker import FEATURES, SearchRanker

WORDS = "drill cordless hammer sink steel kitchen light ceiling led hose garden grey couch paint white door".split()
QUERIES = ["cordless drill", "steel kitchen sink", "led light", "garden hose 50 ft", "drils", "white paint door", "zzz"]


def catalog(n: int = 40, seed: int = 0) -> tuple[list[str], list[str], torch.Tensor]:
    rng = np.random.default_rng(seed)
    ids = [f"p{i}" for i in range(n)]
    texts = [" ".join(rng.choice(WORDS, size=int(rng.integers(2, 6)))) for _ in ids]
    return ids, texts, F.normalize(torch.randn(n, 8, generator=torch.Generator().manual_seed(seed)), dim=1)


def ranker() -> SearchRanker:
    """A ranker whose MLP and every feature matter (a fresh one only looks at `dense`)."""
    torch.manual_seed(1)
    model = SearchRanker()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p))
        model.fit_scaling(torch.rand(100, len(FEATURES)))
    return model.eval()


def queries(n: int = len(QUERIES)) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    return F.normalize(torch.randn(n, 8, generator=g), dim=1), F.normalize(torch.randn(n, 8, generator=g), dim=1)


def stats_of(ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    popularity = {i: float(n % 7) for n, i in enumerate(catalog()[0])}
    return (np.array([popularity.get(i, 0.0) for i in ids], np.float32),
            np.array([0.1 * (popularity.get(i, 0.0) % 3) for i in ids], np.float32))


def loaded(n_candidates: int = 200):
    """The test catalog, and a live searcher holding all of it."""
    ids, texts, vecs = catalog()
    live = HybridSearcher(dim=8, n_candidates=n_candidates)
    for item, text, vec in zip(ids, texts, vecs):
        live.upsert(item, text, vec)
    return ids, texts, vecs, live


def offline(ids, texts, vecs, n_candidates) -> HybridSearcher:
    """The searcher `evaluate search` builds: slots are catalog rows."""
    return HybridSearcher.from_catalog(ids, texts, vecs, n_candidates)


@pytest.mark.parametrize("n_candidates", [5, 200])
def test_a_live_searcher_ranks_exactly_like_one_built_from_the_catalog(n_candidates):
    ids, texts, vecs, live = loaded(n_candidates)
    hybrid = offline(ids, texts, vecs, n_candidates)
    tuned, zero = queries()
    user = F.normalize(torch.ones(8), dim=0)
    model = ranker()
    for n, q in enumerate(QUERIES):
        cands = hybrid.candidates(q, tuned[n], zero[n], stats_of, user)
        assert cands.ids == [ids[i] for i in cands.idx]  # slots are catalog rows
        got = live.candidates(q, tuned[n], zero[n], stats_of, user)
        assert got.ids == cands.ids and np.array_equal(got.idx, cands.idx)
        assert torch.equal(got.features, cands.features)
        assert live.search(q, tuned[n], zero[n], model, 10, item_stats=stats_of, user_vec=user) \
            == hybrid.search(q, tuned[n], zero[n], model, 10, item_stats=stats_of, user_vec=user)


def test_int8_blocks_only_choose_dense_candidates_and_features_stay_exact():
    """The gateway packs item vectors as int8 for the scan: the dense candidates may differ from
    the exact scan's only near ties, and every feature comes from the float32 vectors."""
    ids, texts, vecs = catalog(300, seed=4)
    exact, packed = offline(ids, texts, vecs, 20), offline(ids, texts, vecs, 20)
    packed.dense.pack_all()
    tuned, zero = queries()
    dense = FEATURES.index("dense")
    for n, q in enumerate(QUERIES):
        cands = packed.candidates(q, tuned[n], zero[n])
        torch.testing.assert_close(cands.features[:, dense], vecs[torch.from_numpy(cands.idx)] @ tuned[n], rtol=0, atol=1e-6)
        want = exact.candidates(q, tuned[n], zero[n])
        assert len(set(cands.ids) ^ set(want.ids)) <= 4  # a swap or two at the edge of the dense top 20


def test_upserts_and_removes_take_effect_and_stale_vectors_are_ignored():
    ids, texts, vecs, live = loaded()
    tuned, zero = queries(1)
    model = ranker()
    live.upsert("new", "titanium cordless drill")  # found by its text before it has a vector
    assert "new" in [i for i, _ in live.search("titanium", tuned[0], zero[0], model, 3)]
    assert live.set_vectors([("new", "an older title")], vecs[:1]) == 0  # stale: not applied
    assert "new" not in live.dense
    assert live.set_vectors([("new", "titanium cordless drill")], vecs[:1]) == 1
    assert "new" in live.dense
    live.upsert("new", "titanium cordless drill")  # same text (e.g. a price change): vector kept
    assert "new" in live.dense
    live.upsert("new", "titanium hammer")  # new text: old vector dropped until re-encoded
    assert "new" not in live.dense
    assert live.remove("new") and not live.remove("new")
    assert "new" not in [i for i, _ in live.search("titanium", tuned[0], zero[0], model, 50)]
    allowed = live.search("cordless drill", tuned[0], zero[0], model, 50, allow=lambda i: i.endswith("1"))
    assert allowed and all(i.endswith("1") for i, _ in allowed)


def test_after_churn_ranks_like_an_offline_searcher_over_the_final_catalog():
    ids, texts, vecs = catalog()
    live = HybridSearcher(dim=8, n_candidates=200)
    extra_ids, extra_texts, extra_vecs = catalog(10, seed=5)
    for item, text, vec in zip(extra_ids, extra_texts, extra_vecs):
        live.upsert("x" + item, text, vec)
    for item, text, vec in zip(ids, texts, vecs):
        live.upsert(item, "placeholder " + text)
        live.upsert(item, text)
        live.set_vectors([(item, text)], vec.unsqueeze(0))
    for item in extra_ids:
        live.remove("x" + item)
    hybrid = offline(ids, texts, vecs, 200)
    tuned, zero = queries()
    model = ranker()
    for n, q in enumerate(QUERIES):
        got = live.search(q, tuned[n], zero[n], model, 10, item_stats=stats_of)
        want = hybrid.search(q, tuned[n], zero[n], model, 10, item_stats=stats_of)
        assert [i for i, _ in got] == [i for i, _ in want]
        assert [s for _, s in got] == pytest.approx([s for _, s in want], rel=1e-5)


def test_empty_and_vectorless_catalogs_search_without_errors():
    live = HybridSearcher(dim=8)
    tuned, zero = queries(1)
    assert live.search("drill", tuned[0], zero[0], ranker(), 5) == []
    live.upsert("a", "cordless drill")
    live.upsert("b", "garden hose")
    assert [i for i, _ in live.search("drill", tuned[0], zero[0], ranker(), 5)] == ["a"]
    assert live.dense_search(tuned[0], 5) == []


def test_lexical_scores_computed_before_a_catalog_change_are_not_used_after_it():
    ids, texts, vecs, live = loaded()
    tuned, zero = queries(1)
    early = live.lexical("cordless drill")
    assert live.candidates("cordless drill", tuned[0], zero[0], lexical=early).ids == \
        live.candidates("cordless drill", tuned[0], zero[0]).ids
    live.remove(ids[0])
    live.upsert("new", "cordless drill drill", vecs[0])  # takes the freed slot
    got = live.candidates("cordless drill", tuned[0], zero[0], lexical=early)
    want = live.candidates("cordless drill", tuned[0], zero[0])
    assert got.ids == want.ids and "new" in got.ids and ids[0] not in got.ids
    assert torch.equal(got.features, want.features)


def test_slot_and_row_maps_follow_every_change():
    """The arrays candidates read instead of per-id dicts agree with the indexes after churn."""
    rng = np.random.default_rng(11)
    live = HybridSearcher(dim=8)
    words = ["drill", "saw", "paint", "pipe", "lamp", "hose", "sink", "fan"]
    for _ in range(3000):
        item = f"i{rng.integers(300)}"
        text = " ".join(rng.choice(words, 3))
        op = rng.integers(4)
        if op == 0:
            live.upsert(item, text)
        elif op == 1:
            live.upsert(item, text, F.normalize(torch.randn(8), dim=0))
        elif op == 2 and item in live:  # a vector for the current text, or one gone stale
            live.set_vectors([(item, live.texts[item] if rng.random() < 0.7 else text)], F.normalize(torch.randn(1, 8), dim=1))
        else:
            live.remove(item)
    for item in live.texts:
        slot = int(live.index.slots([item])[0])
        row = live.dense.slot.get(item, -1)
        assert live._slot_row[slot] == row
        if row >= 0:
            assert live._row_slot[row] == slot
    free_rows = [r for r, i in enumerate(live.dense.ids) if i is None]
    assert all(live._row_slot[r] == -1 for r in free_rows)


def test_a_partial_vector_set_past_the_first_slots_searches_and_finds_vectorless_items_by_text():
    """Issue 12: a restarted gateway with vectors for the first items only (a half-filled
    cache) indexed BM25 slots past the slot-to-row array and answered every search with an
    IndexError. Items without a vector must still be lexical candidates."""
    live = HybridSearcher(dim=8, n_candidates=50)
    vectors = F.normalize(torch.randn(3000, 8, generator=torch.Generator().manual_seed(3)), dim=1)
    for n in range(3000):
        text = f"widget model {n} bracket" if n != 2500 else "titanium cordless drill"
        live.upsert(f"i{n}", text, vectors[n] if n < 500 else None)  # vectors for the first 500 only
    assert len(live.dense) == 500
    tuned, zero = queries(1)
    cands = live.candidates("titanium drill", tuned[0], zero[0])
    ids, features = cands.ids, cands.features
    assert "i2500" in ids
    dense = FEATURES.index("dense")
    assert float(features[ids.index("i2500"), dense]) == 0.0  # no vector: no dense score
    assert [i for i, _ in live.search("titanium drill", tuned[0], zero[0], ranker(), 3)][0] == "i2500"
