"""OnlineSASRec: warm start from a checkpoint, new items from their first events, learning."""
from __future__ import annotations

import copy

import numpy as np
import torch

from models.rec.online_neural import OnlineSASRec, OnlineSASRecConfig
from models.rec.sasrec import SASRec, SASRecConfig

ITEMS = [f"i{i}" for i in range(40)]


def _checkpoint(seed: int = 0) -> SASRec:
    torch.manual_seed(seed)
    return SASRec(SASRecConfig(n_items=len(ITEMS), dim=16, layers=1, heads=1, max_len=8, dropout=0.0)).eval()


def _model(**overrides: object) -> OnlineSASRec:
    config = OnlineSASRecConfig(**{"negatives": 16, "num_shards": 2, "seed": 1, **overrides})  # type: ignore[arg-type]
    return OnlineSASRec.warm_start(_checkpoint(), ITEMS, config)


def test_warm_start_rows_and_scores_equal_the_checkpoints():
    checkpoint = _checkpoint()
    model = OnlineSASRec.warm_start(checkpoint, ITEMS, OnlineSASRecConfig(num_shards=2))
    assert len(model.store) == len(ITEMS)
    assert torch.equal(model.store.lookup(ITEMS, admit=False), checkpoint.encoder.all().detach())
    history = ["i3", "i7", "i1"]
    expected = checkpoint.score([np.asarray([3, 7, 1])])[0]  # [n_items] by index
    by_item = dict(zip(model.catalogue(), model.scores([history])[0].tolist()))
    assert torch.allclose(torch.tensor([by_item[i] for i in ITEMS]), expected, atol=1e-4)


def test_items_the_checkpoint_never_saw_are_left_out():
    known = [i % 4 != 0 for i in range(len(ITEMS))]
    model = OnlineSASRec.warm_start(_checkpoint(), ITEMS, OnlineSASRecConfig(num_shards=1), known=known)
    assert "i0" not in model.store and "i1" in model.store
    assert all(item != "i0" for item, _ in model.rank(["i1", "i2"], 40))


def test_a_new_item_gets_a_row_and_becomes_rankable_after_a_few_events():
    model = _model(row_lr=0.05, dense_lr=1e-3)
    assert all(item != "new" for item, _ in model.rank(["i5"], len(ITEMS)))
    sequences = [["i5", "new"], ["i9", "i5", "new"]]
    model.learn(sequences[:1])
    assert "new" in model.store
    start = torch.stack([model.store.lookup(["i5"], admit=False)[0]])
    assert torch.allclose(model.store.lookup(["new"], admit=False), start, atol=0.2)  # starts near its co-occurring item
    for _ in range(30):
        model.learn(sequences * 4)
    top = [item for item, _ in model.rank(["i9", "i5"], 3)]
    assert "new" in top


def test_learning_moves_only_the_rows_it_touched_and_leaves_inputs_alone():
    model = _model(replay_ratio=0.0)
    before = model.store.lookup(ITEMS, admit=False).clone()
    sequences = [["i1", "i2", "i3"], ["i2", "i3"]]
    frozen = copy.deepcopy(sequences)
    model.learn(sequences)
    assert sequences == frozen
    after = model.store.lookup(ITEMS, admit=False)
    moved = {ITEMS[i] for i in torch.nonzero((after - before).abs().sum(1) > 0).flatten().tolist()}
    assert {"i1", "i2", "i3"} <= moved
    assert len(moved) <= 3 + model.config.negatives  # the sequences' items and the sampled negatives


def test_online_learning_lifts_a_transition_the_checkpoint_did_not_know():
    model = _model(row_lr=0.05, dense_lr=1e-3, replay_ratio=0.0)
    rank_before = [item for item, _ in model.rank(["i20"], len(ITEMS))].index("i30")
    for _ in range(40):
        model.learn([["i20", "i30"]] * 8)
    rank_after = [item for item, _ in model.rank(["i20"], len(ITEMS))].index("i30")
    assert rank_after < rank_before and rank_after < 3


def test_a_history_of_unknown_items_ranks_nothing():
    assert _model().rank(["nobody-knows"], 5) == []


def test_a_new_item_with_text_starts_at_the_projection_of_its_text():
    model = _model()
    rows = model.store.lookup(ITEMS, admit=False)
    mix = torch.randn(16, 16, generator=torch.Generator().manual_seed(2))
    texts = {item: rows[i] @ mix for i, item in enumerate(ITEMS)}  # text = an invertible map of the row
    model.fit_text_projection(texts)
    wanted = torch.randn(16, generator=torch.Generator().manual_seed(3))
    model.learn([["i1", "fresh"]], texts={"fresh": wanted @ mix})
    row = model.store.get("fresh")
    assert row is not None and torch.allclose(row, wanted, atol=0.05)  # one learning step away from it
    assert not torch.allclose(row, rows[1], atol=0.5)  # not the co-occurrence start
