import math

import numpy as np
import pytest
import torch

from models.rec.baselines import Popularity, Transition, TransitionConfig


def seqs():
    # a->b twice, a->c once, b->c once, c->d once (items 0..4; item 4 never seen)
    return [np.array([0, 1, 2]), np.array([0, 1]), np.array([0, 2, 3])]


def test_popularity_counts():
    pop = Popularity(5).fit(seqs())
    s = pop.score([np.array([0]), np.array([])])
    assert s.shape == (2, 5)
    assert s[0].tolist() == [3.0, 2.0, 2.0, 1.0, 0.0] and torch.equal(s[0], s[1])


def test_transition_matches_the_readme_formula():
    tr = Transition(5).fit(seqs())
    history = np.array([3, 0, 1])  # last item 1 (w=1), then 0 (w=0.5), then 3 (w=0.25)
    got = tr.score([history])[0].double()
    out_deg = {0: 3, 1: 1, 2: 1, 3: 0}
    pop = np.array([3, 2, 2, 1, 0]) / 3.0
    expected = 1e-3 * pop
    expected[2] += 1.0 * 1 / math.sqrt(1 + out_deg[1])  # b -> c
    expected[1] += 0.5 * 2 / math.sqrt(1 + out_deg[0])  # a -> b
    expected[2] += 0.5 * 1 / math.sqrt(1 + out_deg[0])  # a -> c
    # item 3 has no outgoing transitions
    assert got.numpy() == pytest.approx(expected, rel=1e-5)


def test_only_the_last_three_items_count():
    tr = Transition(5).fit(seqs())
    a = tr.score([np.array([0, 3, 3, 3])])[0]
    b = tr.score([np.array([3, 3, 3])])[0]
    assert torch.equal(a, b)


def test_extended_transitions_add_skips_and_reverse():
    plain = Transition(5, TransitionConfig(weights=(1.0,), popularity_weight=0)).fit(seqs())
    ext = Transition(5, TransitionConfig(weights=(1.0,), gaps=2, reverse=0.5, popularity_weight=0)).fit(seqs())
    h = [np.array([0])]
    assert plain.score(h)[0, 3] == 0 and ext.score(h)[0, 3] > 0  # 0 -> 2 -> 3 skip
    h = [np.array([2])]
    assert plain.score(h)[0, 1] == 0 and ext.score(h)[0, 1] > 0  # reverse of 1 -> 2


def test_transition_matrix_equals_the_counts_laid_out_by_hand():
    """The batch model counts with the online `TransitionCounts`: the same matrix as counting
    every (a, b `gap` later) pair of the sequences directly, skips and reverse included."""
    import scipy.sparse as sp

    rng = np.random.default_rng(1)
    data = [rng.integers(0, 40, size=rng.integers(1, 9)) for _ in range(200)]

    def pairs(gap: int) -> sp.csr_matrix:
        a = np.concatenate([s[:-gap] for s in data if len(s) > gap])
        b = np.concatenate([s[gap:] for s in data if len(s) > gap])
        return sp.csr_matrix((np.ones(len(a)), (a, b)), shape=(40, 40))

    config = TransitionConfig(gaps=3, gap_decay=0.5, reverse=0.3)
    degree = np.asarray(pairs(1).sum(axis=1)).ravel()
    expected = sp.diags(1 / np.sqrt(1 + degree)) @ (pairs(1) + 0.5 * pairs(2) + 0.25 * pairs(3) + 0.3 * pairs(1).T)
    got = Transition(40, config).fit(data).matrix
    assert abs(got - expected).max() < 1e-12
