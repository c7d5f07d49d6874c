import torch

from models.vector_cache import VectorCache


def test_vectors_survive_a_restart_keyed_by_text(tmp_path):
    path = tmp_path / "cache.safetensors"
    cache = VectorCache(path, dim=3)
    cache.put(["red drill", "blue hose"], torch.eye(3)[:2])
    cache.save()
    again = VectorCache(path, dim=3)
    assert torch.equal(again.get("red drill"), torch.eye(3)[0])
    assert again.get("green hose") is None
    assert not again.dirty
    again.save()  # nothing changed: nothing written
    empty = VectorCache(tmp_path / "none.safetensors", dim=3)
    empty.dirty = True
    empty.save()
    assert VectorCache(tmp_path / "none.safetensors", dim=3).vectors == {}


def test_cached_vectors_encode_only_texts_the_model_has_not_seen(tmp_path):
    from models.vector_cache import cached_vectors

    calls = []

    def encode(texts):
        calls.append(list(texts))
        return torch.stack([torch.full((3,), float(ord(t[0]))) for t in texts])

    first = cached_vectors(tmp_path, "model-a", ["x", "y"], encode)
    again = cached_vectors(tmp_path, "model-a", ["y", "x", "y"], encode)  # another order: all hits
    torch.testing.assert_close(again, first[[1, 0, 1]])
    assert calls == [["x", "y"]]
    grown = cached_vectors(tmp_path, "model-a", ["x", "z"], encode)  # a changed catalog: only z
    assert calls[-1] == ["z"] and grown[1, 0] == ord("z")
    cached_vectors(tmp_path, "model-b", ["x"], encode)  # another model: its own file
    assert calls[-1] == ["x"] and len(list(tmp_path.glob("*.safetensors"))) == 2
    cached_vectors(None, "model-a", ["x"], encode)  # no cache dir: always encodes
    assert len(calls) == 4
