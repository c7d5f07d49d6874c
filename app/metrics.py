"""Every Prometheus metric of streamrank. Names: `streamrank_` prefix, base units, no ids as labels."""
from __future__ import annotations

import gc
import time
from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import (CollectorRegistry, Counter, Gauge, GCCollector, Histogram, PlatformCollector,
                               ProcessCollector)
from prometheus_client.core import CounterMetricFamily
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector


class ObservedCounter(Collector):
    """A counter kept by the object that counts (a cache, a batcher, a store) and read at scrape
    time: exposed as a Prometheus counter (`_total`) without a second count kept in step on the
    hot path. `labels(...).set_function(read)` or `.set(value)`, as on a Gauge."""

    def __init__(self, name: str, documentation: str, labelnames: tuple[str, ...] | list[str] = (),
                 registry: CollectorRegistry | None = None) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, tuple(labelnames)
        self._reads: dict[tuple[str, ...], Callable[[], float]] = {}
        self._counts: Callable[[], Mapping[str, float]] | None = None
        if registry is not None:
            registry.register(self)

    def labels(self, **labels: str) -> _ObservedChild:
        return _ObservedChild(self._reads, tuple(str(labels[n]) for n in self.labelnames))

    def count_by(self, read: Callable[[], Mapping[str, float]]) -> None:
        """Read a one-label counter's values from a dict the counting object keeps (label value ->
        count): one series per key, which a plain `d[k] = d.get(k, 0) + 1` adds, no lock, no child."""
        if len(self.labelnames) != 1:
            raise ValueError(f"count_by needs exactly one label, {self.name} has {self.labelnames}")
        self._counts = read

    def describe(self) -> list[CounterMetricFamily]:
        return [CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for key, read in list(self._reads.items()):
            family.add_metric(list(key), float(read()))
        if self._counts is not None:
            for value, count in list(self._counts().items()):
                family.add_metric([value], float(count))
        yield family


class _ObservedChild:
    def __init__(self, reads: dict[tuple[str, ...], Callable[[], float]], key: tuple[str, ...]) -> None:
        self._reads, self._key = reads, key

    def set_function(self, read: Callable[[], float]) -> None:
        self._reads[self._key] = read

    def set(self, value: float) -> None:
        self._reads[self._key] = lambda: value


class Metrics:
    """One registry per process (tests build their own, so nothing leaks between them)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        # The standard process_*, python_info and python_gc_* metrics the default registry has.
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        self.events_processed = Counter(
            "streamrank_events_processed_total", "Valid events applied to tables", ["type"], registry=r)
        self.events_duplicate = Counter(
            "streamrank_events_duplicate_total", "Events dropped because their event_id was seen", registry=r)
        self.events_redelivered = Counter(
            "streamrank_events_redelivered_total", "Redelivered events skipped by the offset guard", ["table"], registry=r)
        self.agent_records = Counter(
            "streamrank_agent_records_total", "Records an agent has taken and handled, in batches", ["agent"],
            registry=r)
        self.agent_batches = Counter(
            "streamrank_agent_batches_total", "Batches of records an agent has handled", ["agent"], registry=r)
        # Rows of the dedup tables (seen event ids, charged ad tokens) dropped once past their window.
        self.rows_expired = Counter(
            "streamrank_table_rows_expired_total", "Table rows dropped once older than their table keeps them",
            ["table"], registry=r)
        self.events_rekeyed = Counter(
            "streamrank_events_rekeyed_total", "Events re-sent keyed by their user id", registry=r)
        self.dead_letters = Counter(
            "streamrank_dead_letters_total", "Records sent to the dead-letter topic", ["source", "reason"], registry=r)
        self.catalog_changes = Counter(
            "streamrank_catalog_changes_total", "Catalog changes applied", ["op"], registry=r)
        self.campaign_changes = Counter(
            "streamrank_campaign_changes_total", "Campaign versions applied to the campaigns table", registry=r)
        # Per campaign, as the gateway's impressions: what an advertiser is billed on.
        self.ad_clicks = Counter(
            "streamrank_ad_clicks_total", "Clicks on sponsored results charged, per campaign", ["campaign"], registry=r)
        self.ad_spend = Counter(
            "streamrank_ad_spend_total", "Amount charged for clicks, per campaign", ["campaign"], registry=r)
        self.ad_charges_refused = Counter(
            "streamrank_ad_charges_refused_total", "Clicks with an ad token not charged, by reason",
            ["reason"], registry=r)
        # One a day per campaign is allowed (the click that crossed the budget); more means the
        # at-most-one-click rule broke (ops/prometheus/alerts.yml: StreamrankAdOverspend).
        self.ad_overspend_clicks = Counter(
            "streamrank_ad_overspend_clicks_total", "Charged clicks that left a campaign's day spend past its budget",
            ["campaign"], registry=r)
        self.event_lag = Histogram(
            "streamrank_event_processing_lag_seconds", "Wall time from Kafka append to table update",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60), registry=r)
        self.samples_made = Counter(
            "streamrank_samples_total", "Training samples derived from events", ["kind"], registry=r)
        # Online learner
        self.learner_samples = Counter(
            "streamrank_learner_samples_total", "Samples the learner scored and learned from", ["kind"], registry=r)
        self.learner_skipped = Counter(
            "streamrank_learner_samples_skipped_total", "Samples dropped: already learned or unreadable",
            ["reason"], registry=r)
        self.learner_batch_seconds = Histogram(
            "streamrank_learner_batch_seconds", "Time to score and learn one micro-batch",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5), registry=r)
        self.online_metric = Gauge(
            "streamrank_online_metric", "Progressive validation over the window since the last version",
            ["model", "metric"], registry=r)
        self.model_decisions = Counter(
            "streamrank_model_decisions_total", "Learner decisions on proposed versions",
            ["decision"], registry=r)
        self.learner_neural_samples = Counter(
            "streamrank_learner_neural_samples_total",
            "Rank samples the neural model learned, or left to the count model alone (over its time share)",
            ["outcome"], registry=r)
        self.learner_neural_blend = Gauge(
            "streamrank_learner_neural_blend", "Weight of the neural model in the served blend (0: left out)",
            registry=r)
        self.learner_neural_decisions = Counter(
            "streamrank_learner_neural_decisions_total", "The guard's decisions on neural versions", ["decision"],
            registry=r)
        self.learner_version = Gauge(
            "streamrank_learner_serving_version", "Version the learner last promoted (what gateways serve)", registry=r)
        self.learner_lag = Gauge(
            "streamrank_learner_lag_samples", "Samples on the samples topic the learner has not read yet", registry=r)
        self.embedding_rows = Gauge(
            "streamrank_embedding_rows", "Rows held per embedding shard", ["table", "shard"], registry=r)
        self.embedding_bytes = Gauge(
            "streamrank_embedding_bytes", "Tensor bytes per embedding shard", ["table", "shard"], registry=r)
        self.embedding_admissions = ObservedCounter(
            "streamrank_embedding_admissions", "Ids given a row", ["table"], registry=r)
        self.embedding_evictions = ObservedCounter(
            "streamrank_embedding_evictions", "Rows evicted", ["table"], registry=r)
        self.process_resident_bytes = Gauge(
            "streamrank_learner_resident_bytes", "Resident memory of the learner's process", registry=r)
        # Gateway
        self.http_requests = Counter(
            "streamrank_http_requests_total", "HTTP requests", ["route", "method", "status"], registry=r)
        self.http_latency = Histogram(
            "streamrank_http_request_duration_seconds", "HTTP request latency", ["route"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1), registry=r)
        self._http_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self.events_accepted = Counter(
            "streamrank_http_events_accepted_total", "Events accepted over HTTP and produced", ["kind"], registry=r)
        self.events_rejected = Counter(
            "streamrank_http_events_rejected_total", "Events refused over HTTP", ["kind"], registry=r)
        # Per campaign (an id as a label, unlike the rest): what an advertiser is billed on must be seen per campaign.
        self.ad_impressions = ObservedCounter(  # counted by the gateway's SponsoredSlots (`impressions`)
            "streamrank_ad_impressions", "Sponsored results served, per campaign", ["campaign"], registry=r)
        self.ads_seconds = ObservedCounter(  # read from the gateway's SponsoredSlots: a float added to, no lock a request
            "streamrank_gateway_ads_seconds",
            "Time answers spent on sponsored slots: every auction run (a cached list known to hold no payable ad runs "
            "none), and the page, tokens and counts of those with ads",
            registry=r)
        self.state_records = Gauge(
            "streamrank_gateway_state_records", "Records held in gateway memory", ["table"], registry=r)
        self.profile_bytes = Gauge(
            "streamrank_gateway_profile_bytes",
            "Bytes the shoppers' profiles hold in gateway memory (keys, slots, records; item ids shared)",
            registry=r)
        self.state_applied = Counter(
            "streamrank_gateway_changelog_records_total", "Changelog records applied by the gateway",
            ["table"], registry=r)
        self.dense_items = Gauge(
            "streamrank_gateway_dense_items", "Catalog items with a vector for dense search", registry=r)
        self.model_swaps = Counter(
            "streamrank_model_swaps_total", "Model versions installed for serving", registry=r)
        self.online_version = Gauge(
            "streamrank_gateway_online_version", "Online model version this gateway serves", registry=r)
        self.ad_count_keys = Gauge(
            "streamrank_gateway_ad_count_keys",
            "Ad click-count keys the served click model holds: (item, query) pairs and items (about 360 bytes each)",
            registry=r)
        self.online_updates = Counter(
            "streamrank_gateway_model_updates_total", "Model-update records applied", ["type"], registry=r)
        self.model_records_rejected = Counter(
            "streamrank_model_records_rejected_total",
            "Model-update and model-command records refused (unsigned, forged, undecodable) and skipped",
            ["source", "reason"], registry=r)
        # Read from the serving objects at scrape time (see app.gateway.app): nothing per request.
        self.rec_cache_lookups = ObservedCounter(
            "streamrank_gateway_rec_cache_lookups", "Recommendation cache lookups, by result (hit, miss)",
            ["result"], registry=r)
        self.rec_cache_entries = Gauge(
            "streamrank_gateway_rec_cache_entries", "Recommendation lists held in the cache", registry=r)
        self.rec_cache_bytes = Gauge(
            "streamrank_gateway_rec_cache_bytes", "Estimated bytes of the recommendation cache", registry=r)
        self.rank_passes = ObservedCounter(
            "streamrank_gateway_rank_batch_passes", "Embedding retrieval passes run", registry=r)
        self.rank_requests = ObservedCounter(
            "streamrank_gateway_rank_batch_requests", "Requests the embedding retrieval passes served", registry=r)
        self.model_load_failures = Counter(
            "streamrank_model_load_failures_total", "Model versions that failed to load", registry=r)
        self.model_republish_requests = Counter(
            "streamrank_model_republish_requests_total",
            "Whole versions this gateway asked the learner for (a delta's parent missing)", registry=r)
        self.gc_pause = Histogram(
            "streamrank_gc_pause_seconds", "Pauses of Python's cyclic garbage collector (the whole process stops)",
            ["generation"], buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1), registry=r)
        # How late the event loop wakes a sleeper (app/gateway/loop_stalls.py): every request
        # waits that long too, whatever its own handler takes (the http histogram's blind spot).
        self.loop_lag = Histogram(
            "streamrank_event_loop_lag_seconds", "How late the event loop ran a timer due now",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1), registry=r)

    def http_request(self, route: str, method: str, status: int) -> tuple[Any, Any]:
        """The labelled request counter and latency histogram of one kind of request, kept:
        `labels()` takes a lock and builds the label tuple on every call."""
        key = (route, method, status)
        children = self._http_children.get(key)
        if children is None:
            children = self._http_children[key] = (
                self.http_requests.labels(route=route, method=method, status=str(status)),
                self.http_latency.labels(route=route))
        return children

    def observe_event_lags(self, lags: list[float]) -> None:
        """The worker's per-event processing lags, a batch at a time (see observe_all)."""
        observe_all(self.event_lag, lags)

    def track_gc_pauses(self) -> Callable[[], None]:
        """Time every collection into `gc_pause`; returns the function that stops it."""
        started = [0.0]

        def on_gc(phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                started[0] = time.perf_counter()
            else:
                self.gc_pause.labels(generation=str(info["generation"])).observe(time.perf_counter() - started[0])

        gc.callbacks.append(on_gc)
        return lambda: gc.callbacks.remove(on_gc)


def sample_sum(text: str, name: str, **labels: str) -> float:
    """The sum of sample `name` over the series of Prometheus `text` with these labels (0.0: none)."""
    return sum(s.value for family in text_string_to_metric_families(text) for s in family.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def sample_totals(text: str) -> dict[str, float]:
    """Every sample of Prometheus `text`, summed per sample name (labels dropped)."""
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            totals[s.name] = totals.get(s.name, 0.0) + s.value
    return totals


def observe_all(histogram: Histogram, values: list[float]) -> None:
    """`histogram.observe(v)` for every value, with one lock taken per bucket touched rather
    than two per value: the worker observes every event's lag, a batch at a time."""
    if not values:
        return
    bounds = histogram._upper_bounds
    for index, n in Tally(bisect_left(bounds, v) for v in values).items():
        histogram._buckets[index].inc(n)  # bucket i counts values <= bound i (above bound i-1)
    histogram._sum.inc(sum(values))
