import numpy as np
import torch

from models.rec.blend import LogBlend, sum_normalise_rows
from models.rec.sasrec import SASRec, SASRecConfig, pad_right
from models.rec.training import TrainConfig, train_sasrec


def model(**kw):
    torch.manual_seed(0)
    cfg = SASRecConfig(n_items=30, dim=16, layers=1, heads=2, max_len=8, dropout=0.0, **kw)
    attrs = [np.array([i % 3]) for i in range(30)] if kw.get("n_attributes") else None
    return SASRec(cfg, attrs).eval()


def test_causal_a_position_never_sees_later_items():
    m = model(n_attributes=3)
    a = torch.tensor([[1, 2, 3, 4, 5]])
    b = torch.tensor([[1, 2, 3, 9, 17]])
    ha, hb = m(a), m(b)
    assert torch.allclose(ha[:, :3], hb[:, :3], atol=1e-6)
    assert not torch.allclose(ha[:, 3], hb[:, 3])


def test_padding_does_not_change_real_positions_and_score_uses_last_item():
    m = model()
    seq, last = pad_right([np.array([3, 4]), np.array([5, 6, 7, 8])], pad=30)
    assert seq.tolist()[0] == [3, 4, 30, 30] and last.tolist() == [1, 3]
    alone = m(torch.tensor([[3, 4]]))
    assert torch.allclose(m(seq)[0, :2], alone[0], atol=1e-6)
    s = m.score([np.array([3, 4]), np.array([], dtype=np.int64)])
    table = m.encoder.all()
    assert torch.allclose(s[0], alone[0, 1] @ table.T, atol=1e-5)
    assert torch.equal(s[1], torch.zeros(30))  # nothing to go on: zeros (ties)


def test_training_learns_a_deterministic_chain():
    m = model()
    seqs = [np.arange(s, s + 6) % 30 for s in range(30)] * 2
    hist = train_sasrec(m, seqs, TrainConfig(epochs=20, batch_size=30, lr=1e-2, negatives=0))
    assert hist.loss[-1] < hist.loss[0] / 3
    scores = m.score([np.array([10, 11, 12])])
    assert int(scores.argmax()) == 13


def test_sampled_softmax_loss_is_finite_and_positive():
    m = model().train()
    x, _ = pad_right([np.array([1, 2, 3])], 30)
    y, _ = pad_right([np.array([2, 3, 4])], 30)
    loss = m.loss(x, y, negatives=8)
    assert torch.isfinite(loss) and loss > 0


def test_log_blend():
    q = sum_normalise_rows(torch.tensor([[0.0, 2.0, 1.0, 1.0]]))
    assert torch.allclose(q, torch.tensor([[0.0, 0.5, 0.25, 0.25]]))
    parts = {"neural": torch.tensor([[5.0, 0.0, 0.0, 1.0]]), "transition": q, "prior": torch.tensor([[0.0, 0.0, 1.0, 0.5]])}
    assert LogBlend(0.0)(parts).argsort(descending=True).tolist() == [[1, 2, 3, 0]]  # prior breaks the tie
    assert LogBlend(0.0, neural_only=True)(parts).argmax().item() == 0
    assert LogBlend(1.0)(parts).argmax().item() == 3  # log(.25) + 1 beats log(.5)
