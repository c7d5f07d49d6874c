import pytest
import torch

from models.dense_index import BLOCK_ROWS, DenseIndex, int8_supported, pack_rows


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


def random_index(n: int, dim: int = 32, seed: int = 0) -> tuple[DenseIndex, torch.Tensor]:
    vectors = torch.nn.functional.normalize(torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)), dim=1)
    idx = DenseIndex(dim)
    idx.upsert([f"i{r}" for r in range(n)], vectors)
    return idx, vectors


@pytest.mark.skipif(not int8_supported(), reason="int8 scan needs fbgemm (x86)")
def test_packed_blocks_scan_close_to_exact_and_search_stays_exact():
    idx, vectors = random_index(BLOCK_ROWS + 500)  # one full block, one partial
    queries = torch.nn.functional.normalize(torch.randn(20, 32, generator=torch.Generator().manual_seed(1)), dim=1)
    idx.pack_all()
    assert idx.unpacked_blocks(10) == []
    for q in queries:
        exact = vectors @ q
        approx = idx.scan(q)
        assert not torch.equal(approx, exact)  # the int8 path ran
        assert (approx - exact).abs().max() < 0.02
        want = torch.topk(exact, 10).indices.tolist()
        got = idx.search(q, 10)
        assert [i for i, _ in got] == [f"i{r}" for r in want]
        assert [s for _, s in got] == pytest.approx(exact[want].tolist(), abs=1e-6)  # scores are float32 again


@pytest.mark.skipif(not int8_supported(), reason="int8 scan needs fbgemm (x86)")
def test_a_changed_block_is_scanned_exactly_until_packed_again():
    idx, vectors = random_index(BLOCK_ROWS + 10)
    stale = idx.unpacked_blocks(10)
    idx.upsert(["i3"], -vectors[3].unsqueeze(0))  # block 0 changes after its rows were copied
    installed = [idx.install_packed(b, g, len(rows), pack_rows(rows)) for b, g, rows in stale]
    assert installed == [False, True]  # the old copy of block 0 is refused
    q = -vectors[3]
    assert float(idx.scan(q)[3]) == pytest.approx(1.0, abs=1e-6)  # float32 path: exact
    assert idx.search(q, 1)[0][0] == "i3"
    idx.pack_all()
    assert idx.unpacked_blocks(10) == [] and abs(float(idx.scan(q)[3]) - 1.0) < 0.02
    idx.remove("i3")  # a removed row is masked in a packed block too
    assert float(idx.scan(q)[3]) == float("-inf") and idx.search(q, 1)[0][0] != "i3"
