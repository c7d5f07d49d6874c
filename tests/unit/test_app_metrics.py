"""The metrics registry follows Prometheus practice: counters end in `_total`, the process collector is there."""
from __future__ import annotations

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from app.metrics import Metrics, sample_sum, sample_totals


def exposition(metrics: Metrics) -> dict[str, str]:
    """Family name -> type, as a scraper reads them."""
    text = generate_latest(metrics.registry).decode()
    return {f.name: f.type for f in text_string_to_metric_families(text)}


def test_every_counter_is_exposed_as_a_total_and_counts_are_not_gauges():
    metrics = Metrics()
    text = generate_latest(metrics.registry).decode()
    families = list(text_string_to_metric_families(text))
    for family in families:
        if family.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples), family.name
    types = exposition(metrics)
    for name in ("streamrank_embedding_admissions", "streamrank_embedding_evictions",
                 "streamrank_gateway_rec_cache_lookups", "streamrank_gateway_rank_batch_passes",
                 "streamrank_gateway_rank_batch_requests"):
        assert types[name] == "counter", name
    assert types["streamrank_gateway_rec_cache_entries"] == "gauge"


def test_observed_counters_read_the_count_kept_by_the_object_at_scrape_time():
    metrics = Metrics()
    hits = [0]
    metrics.rec_cache_lookups.labels(result="hit").set_function(lambda: hits[0])
    metrics.embedding_admissions.labels(table="items").set(7)
    metrics.rank_passes.labels().set_function(lambda: 3)
    hits[0] = 5
    text = generate_latest(metrics.registry).decode()
    assert sample_sum(text, "streamrank_gateway_rec_cache_lookups_total", result="hit") == 5
    assert sample_sum(text, "streamrank_embedding_admissions_total", table="items") == 7
    assert sample_sum(text, "streamrank_gateway_rank_batch_passes_total") == 3
    assert sample_sum(text, "streamrank_gateway_rank_batch_passes_total", result="nope") == 0


def test_the_standard_process_and_python_collectors_are_registered():
    totals = sample_totals(generate_latest(Metrics().registry).decode())
    assert totals["process_resident_memory_bytes"] > 0
    assert "process_cpu_seconds_total" in totals
    assert "python_info" in totals
    assert "python_gc_collections_total" in totals


def test_sample_sum_adds_the_series_with_the_labels_asked():
    text = ('# TYPE x_total counter\nx_total{a="1",b="p"} 2.0\nx_total{a="1",b="q"} 3.0\n'
            'x_total{a="2",b="p"} 5.0\n')
    assert sample_sum(text, "x_total") == 10
    assert sample_sum(text, "x_total", a="1") == 5
    assert sample_sum(text, "x_total", b="p") == 7


def test_observe_all_equals_one_observe_per_value():
    from prometheus_client import CollectorRegistry, Histogram

    from app.metrics import observe_all

    values = [0.0, 0.005, 0.0051, 0.3, 0.5, 7.0, 61.0, 1e9, 0.02]
    one, many = (Histogram(name, "h", buckets=(0.005, 0.01, 0.5, 60), registry=CollectorRegistry())
                 for name in ("one", "many"))
    for v in values:
        one.observe(v)
    observe_all(many, values)
    observe_all(many, [])
    samples = [[(s.name.split("_", 1)[1], s.labels, s.value) for s in h.collect()[0].samples
                if not s.name.endswith("_created")] for h in (one, many)]
    assert samples[0] == samples[1]
    assert dict(((s[0], s[1].get("le")), s[2]) for s in samples[1])[("bucket", "0.005")] == 2


def test_a_counter_counted_by_a_dict_is_one_total_series_per_key():
    """`ObservedCounter.count_by`: the gateway counts ad impressions in a dict, read at scrape time."""
    metrics = Metrics()
    counts: dict[str, int] = {}
    metrics.ad_impressions.count_by(lambda: counts)
    assert sample_sum(generate_latest(metrics.registry).decode(), "streamrank_ad_impressions_total") == 0.0
    counts["c1"] = 2
    counts["c2"] = 1
    text = generate_latest(metrics.registry).decode()
    assert exposition(metrics)["streamrank_ad_impressions"] == "counter"
    assert sample_sum(text, "streamrank_ad_impressions_total", campaign="c1") == 2.0
    assert sample_sum(text, "streamrank_ad_impressions_total") == 3.0
    with pytest.raises(ValueError, match="exactly one label"):
        metrics.ads_seconds.count_by(lambda: counts)
