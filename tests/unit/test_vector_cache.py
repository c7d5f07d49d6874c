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
