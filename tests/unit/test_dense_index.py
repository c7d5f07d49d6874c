import torch

from models.dense_index import DenseIndex


def unit(*xs):
    v = torch.tensor(xs, dtype=torch.float32)
    return v / v.norm()


def test_search_upsert_remove_and_row_reuse():
    idx = DenseIndex(dim=2, capacity=2)
    idx.upsert(["a", "b", "c"], torch.stack([unit(1, 0), unit(0, 1), unit(1, 1)]))  # grows past capacity
    assert [i for i, _ in idx.search(unit(1, 0.1), 2)] == ["a", "c"]
    idx.upsert(["a"], unit(0, 1).unsqueeze(0))  # a moved
    assert idx.search(unit(1, 0), 1)[0][0] == "c"
    assert idx.remove("c") and not idx.remove("c")
    assert "c" not in [i for i, _ in idx.search(unit(1, 0), 3)]
    idx.upsert(["d"], unit(1, 0).unsqueeze(0))  # takes c's row
    assert len(idx.ids) == 3 and idx.search(unit(1, 0), 1)[0][0] == "d"
    assert len(idx.search(unit(1, 0), 10)) == 3
