"""The online models laid out as blend parts on an item index."""
from __future__ import annotations

import torch

from models.metrics import batch_ranks
from models.rec.online_blend import abstain_when_blind, count_parts, neural_logits
from models.rec.online_neural import OnlineSASRec, OnlineSASRecConfig
from models.rec.sasrec import SASRec, SASRecConfig
from tests.unit.online_streams import batches, chain_stream, small_model

ITEMS = [f"{c}{i}" for c in "xyz" for i in range(12)] + ["never-seen"]
INDEX = {key: i for i, key in enumerate(ITEMS)}


def _learned_counts():  # the embedding term is on in small_model: it is part of the scores too
    model = small_model()
    for batch in batches(chain_stream(80, seed=1), 40):
        model.learn(batch)
    return model


def test_count_scores_rank_every_target_as_the_count_model_does():
    model = _learned_counts()
    samples = [(h, t) for h, t in chain_stream(40, seed=2) if h]
    histories, targets = [h for h, _ in samples], [t for _, t in samples]
    scores, q = count_parts(model, histories, INDEX, len(ITEMS))
    assert scores.shape == q.shape == (len(samples), len(ITEMS))
    assert torch.isinf(scores[:, INDEX["never-seen"]]).all()  # no row: cannot be ranked
    ranks = batch_ranks(scores.clone(), torch.tensor([INDEX[t] for t in targets]),
                        [[INDEX[i] for i in h] for h in histories])
    assert ranks.tolist() == model.score_batch(histories, targets)
    # and the very scores of the count model's own scoring, item by item
    blocks = model._scores(histories, [[] for _ in histories], [None for _ in histories])
    for s, block in enumerate(blocks):
        ids = model.store.row_ids(s)[: model.store.used_rows(s)]
        assert torch.allclose(scores[:, [INDEX[k] for k in ids]], block, atol=1e-6)
    assert torch.allclose(q.sum(1), torch.ones(len(samples)))  # every history here has transitions
    # q follows the counts: a chain's next item gets the most mass
    assert all(int(q[b].argmax()) == INDEX["y" + h[-1][1:]] for b, h in enumerate(histories) if h[-1][0] == "x")


def test_neural_logits_put_the_online_models_scores_on_the_index():
    torch.manual_seed(0)
    sasrec = SASRec(SASRecConfig(n_items=len(ITEMS) - 1, dim=8, layers=1, heads=1, max_len=4, dropout=0.0))
    online = OnlineSASRec.warm_start(sasrec, ITEMS[:-1], OnlineSASRecConfig(num_shards=2))
    logits = neural_logits(online, [["x1", "y1"], ["never-seen"]], INDEX, len(ITEMS))
    direct = online.scores([["x1", "y1"]])[0]
    assert torch.equal(logits[0, [INDEX[k] for k in online.catalogue()]], direct)
    assert torch.isinf(logits[0, INDEX["never-seen"]]) and torch.isinf(logits[1]).all()
    blind = abstain_when_blind(logits)
    assert torch.equal(blind[0], logits[0]) and torch.equal(blind[1], torch.zeros(len(ITEMS)))
