"""Query adapter, listwise loss, ranker fitting and the hybrid searcher on synthetic vectors."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models.hybrid_search import HybridSearcher
from models.query_adapter import QueryAdapter, graded_softmax_loss, serving_adapter
from models.search_ranker import FEATURES, Candidates, SearchRanker, dense_search, top_positive
from models.search_training import Judged, candidate_targets, hard_negatives, train_adapter, train_ranker


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Threads spin against other processes on a small shared CPU; restore the setting after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_adapter_starts_as_identity_and_loss_prefers_graded_order():
    q = F.normalize(torch.randn(5, 384), dim=1)
    torch.testing.assert_close(QueryAdapter()(q), q)
    weights = torch.tensor([[3.0, 1.0, 0.0]])
    good = graded_softmax_loss(torch.tensor([[5.0, 3.0, 0.0]]), weights)
    bad = graded_softmax_loss(torch.tensor([[0.0, 3.0, 5.0]]), weights)
    masked = graded_softmax_loss(torch.tensor([[5.0, 3.0, float("-inf")]]), weights)
    assert good < bad and torch.isfinite(masked)


def test_serving_adapter_computes_what_the_trained_one_does():
    torch.manual_seed(3)
    adapter = QueryAdapter()
    with torch.no_grad():
        for p in adapter.parameters():
            p.normal_(std=0.05)  # not the identity it starts as
    q = F.normalize(torch.randn(7, 384), dim=1)
    with torch.inference_mode():
        exact, fast = adapter(q), serving_adapter(adapter)(q)
    assert (exact - q).norm(dim=1).min() > 0.1
    assert F.cosine_similarity(fast, exact).min() > 1 - 1e-5


@pytest.mark.parametrize("n", [1, 5, 40, 60])
def test_top_picks_the_n_best_positive_scores(n):
    rng = np.random.default_rng(n)
    scores = np.zeros(200, np.float32)
    scores[rng.choice(200, 50, replace=False)] = rng.permutation(50).astype(np.float32) + 1  # distinct, positive
    scores[rng.choice(np.flatnonzero(scores == 0), 10, replace=False)] = -1.0
    expected = set(np.argsort(-scores)[: min(n, 50)].tolist())
    assert set(top_positive(scores, n).tolist()) == expected
    assert len(top_positive(np.zeros(10, np.float32), 3)) == 0


def test_train_adapter_learns_a_query_rotation():
    torch.manual_seed(0)
    items = F.normalize(torch.randn(300, 384), dim=1)
    targets = torch.randint(0, 300, (200,))
    # queries are a fixed random map of their target item: zero-shot cosine is useless
    mix = torch.linalg.qr(torch.randn(384, 384))[0]
    queries = F.normalize(items[targets] @ mix, dim=1)
    judged = [Judged(np.array([int(t)]), np.array([2.0], np.float32)) for t in targets]
    adapter = QueryAdapter()
    before = (dense_search(items, queries, 1)[:, 0] == targets).float().mean()
    hard = hard_negatives(queries, items, 4)
    losses = train_adapter(adapter, queries, judged, items, epochs=25, batch_size=50, lr=5e-3, negatives=64, hard=hard)
    with torch.no_grad():
        after = (dense_search(items, adapter(queries), 1)[:, 0] == targets).float().mean()
    assert losses[-1] < losses[0] / 2 and after > before + 0.5


def test_ranker_learns_which_feature_matters():
    torch.manual_seed(0)
    examples = []
    for _ in range(40):
        feats = torch.rand(20, len(FEATURES))
        feats[:, FEATURES.index("dense")] = torch.rand(20) * 0.01  # uninformative
        best = int(torch.argmax(feats[:, FEATURES.index("bm25_rel")]))
        cands = Candidates(idx=np.arange(20), features=feats)
        examples.append((cands, candidate_targets(cands, Judged(np.array([best]), np.array([2.0], np.float32)))))
    ranker = SearchRanker()
    losses = train_ranker(ranker, examples, epochs=200)
    assert losses[-1] < losses[0]
    hits = sum(int(torch.argmax(ranker(c.features))) == int(torch.argmax(w)) for c, w in examples)
    assert hits >= 36
    clone = SearchRanker().load_tensors(ranker.state_tensors())
    torch.testing.assert_close(clone(examples[0][0].features), ranker(examples[0][0].features))


def test_hybrid_searcher_unions_both_retrievers():
    ids = ["a", "b", "c", "d"]
    titles = ["angle bracket", "cordless drill", "ceiling fan", "garden hose"]
    vecs = torch.eye(4, 384)
    searcher = HybridSearcher.from_catalog(ids, titles, vecs, n_candidates=1)
    q = torch.zeros(384)
    q[2] = 1.0  # dense says "c"
    cands = searcher.candidates("angle bracket", q, q)  # both BM25s say "a"
    assert sorted(cands.idx.tolist()) == [0, 2]
    cands = searcher.candidates("anlge brackt", q, q)  # misspelt: only the character index finds "a"
    assert sorted(cands.idx.tolist()) == [0, 2]
    row_a = cands.features[cands.idx.tolist().index(0)]
    assert row_a[FEATURES.index("bm25_rel")] == 0.0 and row_a[FEATURES.index("chars_rel")] == 1.0
    cands = searcher.candidates("angle bracket", q, q)
    row_a = cands.features[cands.idx.tolist().index(0)]
    assert row_a[FEATURES.index("bm25_rel")] == 1.0 and row_a[FEATURES.index("coverage")] == 1.0
    assert row_a[FEATURES.index("personal")] == 0.0
    # the initial ranker is the dense ranker
    assert [i for i, _ in searcher.search("angle bracket", q, q, SearchRanker(), k=2)] == ["c", "a"]
    user = torch.zeros(384)
    user[0] = 2.0
    cands = searcher.candidates("angle bracket", q, q, user_vec=user)
    assert cands.features[cands.idx.tolist().index(0), FEATURES.index("personal")] == 2.0
