"""The learner's duplicate filter: by source position, across a restart from a checkpoint."""
from app.learner import SampleDedupe


def sample(partition: int, offset: int, target: str) -> dict:
    return {"kind": "next", "user": "u", "history": ["a"], "target": target, "src": [partition, offset]}


def test_redelivered_samples_are_dropped_and_new_ones_kept():
    dedupe = SampleDedupe()
    assert dedupe.is_new(sample(0, 5, "x")) and dedupe.is_new(sample(0, 5, "y"))  # one event, two samples
    assert not dedupe.is_new(sample(0, 5, "x")) and not dedupe.is_new(sample(0, 4, "z"))
    assert dedupe.is_new(sample(1, 0, "x")) and dedupe.is_new(sample(0, 6, "x"))


def test_after_a_restart_the_checkpointed_offset_is_learned_not_refused():
    """A checkpoint keeps the last offset per partition, not the samples of it: a sample of
    exactly that offset is learned (it was counted as unreadable and lost before)."""
    restored = SampleDedupe(SampleDedupe().offsets() | {"src:0": 7})
    assert not restored.is_new(sample(0, 6, "x"))
    assert restored.is_new(sample(0, 7, "x"))
    assert not restored.is_new(sample(0, 7, "x"))
    assert restored.offsets() == {"src:0": 7}
