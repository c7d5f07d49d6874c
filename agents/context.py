"""What an agent is handed: the worker's app, settings, metrics, topics, tables and batches.

Protocols here, so the agents name the shape they use without importing `app`, the layer above
them, not even for types (tests/unit/test_layering.py). `app.worker.Worker` is the one
implementation; `app.settings.Settings`, `app.metrics.Metrics` and `app.batched_writes`'
`BatchedWrites` satisfy the smaller protocols below (mypy checks it where app/worker.py
hands its Worker to the agents' `register`).
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import faust
from faust.types import TableT, TopicT
from prometheus_client import Counter

from tables.ad_spend import Spend
from tables.catalog import Item
from tables.item_stats import Stats
from tables.user_profiles import Profile
from tables.wire.updates import KeyValues

Record = tuple[bytes | None, bytes]  # (key, value) of one Kafka record


class LimitValues(Protocol):
    @property
    def event_bytes(self) -> int: ...

    @property
    def request_bytes(self) -> int: ...

    @property
    def clock_skew_s(self) -> float: ...


class FeatureValues(Protocol):
    @property
    def recent_items(self) -> int: ...

    @property
    def popularity_half_life_s(self) -> float: ...

    @property
    def trending_half_life_s(self) -> float: ...


class BatchValues(Protocol):
    @property
    def batch_events(self) -> int: ...

    @property
    def batch_wait_s(self) -> float: ...


class JoinValues(Protocol):
    @property
    def impression_window_s(self) -> float: ...


class TopicValues(Protocol):
    @property
    def partitions(self) -> int: ...


class AgentSettings(Protocol):
    """The groups of app/settings.py's `Settings` the agents read (their names and types)."""

    @property
    def limits(self) -> LimitValues: ...

    @property
    def features(self) -> FeatureValues: ...

    @property
    def worker(self) -> BatchValues: ...

    @property
    def online(self) -> JoinValues: ...

    @property
    def topics(self) -> TopicValues: ...

    @property
    def runtime(self) -> KeyValues: ...  # the model-updates signing key signs ad tokens too


class AgentMetrics(Protocol):
    """The counters of app/metrics.py's `Metrics` the agents count on."""

    events_processed: Counter
    events_duplicate: Counter
    events_redelivered: Counter
    events_rekeyed: Counter
    agent_records: Counter
    agent_batches: Counter
    dead_letters: Counter
    catalog_changes: Counter
    campaign_changes: Counter
    samples_made: Counter
    ad_clicks: Counter
    ad_spend: Counter
    ad_charges_refused: Counter
    ad_overspend_clicks: Counter

    def observe_event_lags(self, lags: list[float]) -> None: ...


class BatchRows(Protocol):
    """One table's rows as a batch reads and writes them (app/batched_writes.py's `Rows`)."""

    def get(self, key: str, partition: int) -> Any: ...

    def set(self, key: str, partition: int, value: Any) -> None: ...


class Batch(Protocol):
    """The rows and records of one batch of events, written together by `flush`."""

    def rows(self, table: Any) -> BatchRows: ...

    def emit_all(self, topic: str, partition: int, records: Iterable[Record]) -> None: ...

    async def flush(self) -> None: ...


class WorkerContext(Protocol):
    app: faust.App
    events_topic: TopicT
    catalog_topic: TopicT
    item_events_topic: TopicT
    dead_letters_topic: TopicT
    samples_topic: TopicT
    campaigns_topic: TopicT
    users: TableT[str, Profile]
    items: TableT[str, Stats]
    catalog: TableT[str, Item]
    seen: TableT[str, list[int]]  # event id -> (partition, offset) that carried it, when (tables/expiry.py)
    campaigns: TableT[str, dict[str, Any]]  # campaign id -> the campaign's JSON object
    ad_spend: TableT[str, Spend]
    charged_tokens: TableT[str, list[int]]  # ad token id -> (partition, offset) of the click charged, when

    # Read-only here, so the worker's `Settings` and `Metrics` may be more than the agents use.
    @property
    def settings(self) -> AgentSettings: ...

    @property
    def metrics(self) -> AgentMetrics: ...

    def batch(self) -> Batch: ...

    def partition_of(self, key: bytes, partitions: int) -> int: ...
