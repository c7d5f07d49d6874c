import json

import numpy as np
import pytest

from models.data import load_sequences, split_leave_one_out


def write(tmp_path, text, attrs=None):
    path = tmp_path / "seq.txt"
    path.write_text(text)
    attr_path = None
    if attrs is not None:
        attr_path = tmp_path / "attrs.json"
        attr_path.write_text(json.dumps(attrs))
    return path, attr_path


def test_non_contiguous_ids_and_attributes(tmp_path):
    path, attr = write(tmp_path, "u9 a77 b5 a77x\n\nu2 b5 zz\nlonely\n", {"b5": [3, "brand:x"], "zz": 1, "nope": [4]})
    data = load_sequences(path, attr)
    assert data.users == ["u9", "u2"]  # a user with no items is skipped
    assert data.items == ["a77", "b5", "a77x", "zz"]
    assert [s.tolist() for s in data.sequences] == [[0, 1, 2], [1, 3]]
    assert data.n_attributes == 3
    assert [a.tolist() for a in data.item_attributes] == [[], [0, 1], [], [2]]


def test_empty_file_is_an_error(tmp_path):
    path, _ = write(tmp_path, "\n\n")
    with pytest.raises(ValueError, match="no `user item"):
        load_sequences(path)


def test_leave_one_out_never_leaks_the_held_out_items():
    seqs = [np.array([1, 2, 3, 4]), np.array([5, 6]), np.array([7])]
    test = split_leave_one_out(seqs, 1)
    assert test.evaluated.tolist() == [0, 1]  # user 2 has nothing before its target
    assert test.targets.tolist() == [4, 6]
    assert [t.tolist() for t in test.train] == [[1, 2, 3], [5], []]
    val = split_leave_one_out(seqs, 2)
    assert val.evaluated.tolist() == [0] and val.targets.tolist() == [3]
    assert [t.tolist() for t in val.train] == [[1, 2], [], []]
    for split, holdout in ((test, 1), (val, 2)):
        for u, s in enumerate(seqs):
            assert len(split.train[u]) == max(len(s) - holdout, 0)
            assert split.train[u].tolist() == s[: len(split.train[u])].tolist()


def test_beauty_like_file(tmp_path):
    rng = np.random.default_rng(0)
    lines = [f"{u} " + " ".join(str(i) for i in rng.choice(1000, 6, replace=False) * 3 + 11) for u in range(50)]
    path, _ = write(tmp_path, "\n".join(lines) + "\n")
    data = load_sequences(path)
    assert len(data.users) == 50 and data.n_interactions == 300
    assert max(int(s.max()) for s in data.sequences) == data.n_items - 1
