"""The gateway times Python's cyclic GC pauses into a histogram, and stops when told."""
import gc

from app.metrics import Metrics


def collections(metrics: Metrics, generation: str) -> float:
    return metrics.registry.get_sample_value("streamrank_gc_pause_seconds_count", {"generation": generation}) or 0.0


def test_full_collections_are_timed_until_stopped():
    metrics = Metrics()
    stop = metrics.track_gc_pauses()
    gc.collect()
    gc.collect()
    timed = collections(metrics, "2")
    assert timed >= 2  # the collector may also run a full collection by itself meanwhile
    assert metrics.registry.get_sample_value("streamrank_gc_pause_seconds_sum", {"generation": "2"}) > 0
    stop()
    gc.collect()
    assert collections(metrics, "2") == timed
