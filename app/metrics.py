"""Every Prometheus metric of streamrank. Names: `streamrank_` prefix, base units, no ids as labels."""
from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    """One registry per process (tests build their own, so nothing leaks between them)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events_processed = Counter(
            "streamrank_events_processed_total", "Valid events applied to tables", ["type"], registry=r)
        self.events_duplicate = Counter(
            "streamrank_events_duplicate_total", "Events dropped because their event_id was seen", registry=r)
        self.events_redelivered = Counter(
            "streamrank_events_redelivered_total", "Redelivered events skipped by the offset guard", ["table"], registry=r)
        self.events_rekeyed = Counter(
            "streamrank_events_rekeyed_total", "Events re-sent keyed by their user id", registry=r)
        self.dead_letters = Counter(
            "streamrank_dead_letters_total", "Records sent to the dead-letter topic", ["source", "reason"], registry=r)
        self.catalog_changes = Counter(
            "streamrank_catalog_changes_total", "Catalog changes applied", ["op"], registry=r)
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
        self.learner_version = Gauge(
            "streamrank_learner_serving_version", "Version the learner last promoted (what gateways serve)", registry=r)
        self.embedding_rows = Gauge(
            "streamrank_embedding_rows", "Rows held per embedding shard", ["table", "shard"], registry=r)
        self.embedding_bytes = Gauge(
            "streamrank_embedding_bytes", "Tensor bytes per embedding shard", ["table", "shard"], registry=r)
        self.embedding_admissions = Gauge(
            "streamrank_embedding_admissions", "Ids given a row so far", ["table"], registry=r)
        self.embedding_evictions = Gauge(
            "streamrank_embedding_evictions", "Rows evicted so far", ["table"], registry=r)
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
        self.state_records = Gauge(
            "streamrank_gateway_state_records", "Records held in gateway memory", ["table"], registry=r)
        self.state_applied = Counter(
            "streamrank_gateway_changelog_records_total", "Changelog records applied by the gateway",
            ["table"], registry=r)
        self.dense_items = Gauge(
            "streamrank_gateway_dense_items", "Catalog items with a vector for dense search", registry=r)
        self.model_swaps = Counter(
            "streamrank_model_swaps_total", "Model versions installed for serving", registry=r)
        self.online_version = Gauge(
            "streamrank_gateway_online_version", "Online model version this gateway serves", registry=r)
        self.online_updates = Counter(
            "streamrank_gateway_model_updates_total", "Model-update records applied", ["type"], registry=r)
        self.model_records_rejected = Counter(
            "streamrank_model_records_rejected_total",
            "Model-update and model-command records refused (unsigned, forged, undecodable) and skipped",
            ["source", "reason"], registry=r)
        # Read from the serving objects at scrape time (see app.gateway.app): nothing per request.
        self.rec_cache = Gauge(
            "streamrank_gateway_rec_cache", "Recommendation cache: lookups that hit or missed, entries held",
            ["kind"], registry=r)
        self.rank_batches = Gauge(
            "streamrank_gateway_rank_batch", "Embedding retrieval: passes run and requests they served",
            ["kind"], registry=r)
        self.model_load_failures = Counter(
            "streamrank_model_load_failures_total", "Model versions that failed to load", registry=r)
        self.gc_pause = Histogram(
            "streamrank_gc_pause_seconds", "Pauses of Python's cyclic garbage collector (the whole process stops)",
            ["generation"], buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1), registry=r)

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


_REASON_LABELS = (
    ("not signed", "unsigned"),
    ("signature does not match", "forged"),
    ("not valid JSON", "invalid_json"),
    ("over the limit", "oversized"),
    ("is required", "missing_field"),
    ("must be", "invalid_field"),
    ("longer than", "too_long"),
)


def reason_label(reason: str) -> str:
    """A few-valued label from a free-text reason (the full reason goes in the dead letter)."""
    for needle, label in _REASON_LABELS:
        if needle in reason:
            return label
    return "other"
