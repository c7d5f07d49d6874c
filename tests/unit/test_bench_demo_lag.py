"""bench/demo_lag.py's reading of the worker's lag histogram (the demo run itself is a bench)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from tests.unit.test_plots import bench


def test_the_lag_quantiles_are_the_bucket_bounds_they_fall_under():
    module = bench("demo_lag")
    registry = CollectorRegistry()
    lag = Histogram("streamrank_event_processing_lag_seconds", "lag", ["agent"], registry=registry,
                    buckets=(0.05, 0.5, 5.0, 30.0))
    for value, n in ((0.01, 90), (0.3, 6), (2.0, 3)):  # 99 events of one agent under 5 s...
        for _ in range(n):
            lag.labels(agent="events").observe(value)
    lag.labels(agent="items").observe(12.0)  # ...and one of another over it
    buckets, count, total = module.histogram(generate_latest(registry).decode())
    assert count == 100 and abs(total - (0.9 + 1.8 + 6.0 + 12.0)) < 1e-9
    assert buckets[0.05] == 90 and buckets[5.0] == 99 and buckets[float("inf")] == 100
    assert [module.quantile_bound(buckets, count, q) for q in (0.5, 0.95, 0.99, 1.0)] == [0.05, 0.5, 5.0, 30.0]
