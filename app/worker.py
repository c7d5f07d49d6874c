"""The Faust app: topics, tables and agents composed from settings. `faust -A app worker` runs it."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from time import monotonic
from typing import Any

import faust
from faust.auth import Credentials, SASLCredentials, SSLCredentials
from faust.exceptions import ProducerSendError
from faust.sensors import Monitor

from app import faust_compat  # before the app: no offset committed past an unprocessed event
from app.batched_writes import BatchedWrites, KeyPartitions, Record
from app.kafka_io import kafka_ssl_context
from app.metrics import Metrics
from app.producer_flush import make_flush_complete
from app.settings import Settings
from app.table_sweep import TableSweep
from tables import ad_spend, campaigns, catalog, charged_tokens, item_stats, seen_events, user_profiles

log = logging.getLogger(__name__)


@dataclass
class Worker:
    """What the agents need, handed to them explicitly instead of imported as globals."""

    app: faust.App
    settings: Settings
    metrics: Metrics
    events_topic: Any
    catalog_topic: Any
    item_events_topic: Any
    dead_letters_topic: Any
    samples_topic: Any
    model_updates_topic: Any
    users: Any
    items: Any
    catalog: Any
    seen: Any
    campaigns_topic: Any = None
    campaigns: Any = None  # campaign id -> the campaign's JSON object (tables/campaigns.py)
    ad_spend: Any = None  # campaign id -> today's spend, in its item's partition (tables/ad_spend.py)
    charged_tokens: Any = None  # ad token id -> the click charged for it (tables/charged_tokens.py)
    learner: Any = None  # the LearnerService, when learner_enabled
    partition_of: KeyPartitions = field(default_factory=KeyPartitions)
    # table name -> the sweep that drops its expired rows inside the batches (app/table_sweep.py)
    sweeps: dict[str, TableSweep] = field(default_factory=dict)
    send_failure: BaseException | None = None  # a batch Kafka did not take (app/worker.py:_refuse_commits_after)

    def batch(self) -> BatchedWrites:
        """The rows and records of one batch of events, written by its `flush` (app/batched_writes.py)."""
        return BatchedWrites(self.send_records, self.sweeps)

    async def send_records(self, topic: str, partition: int, records: list[Record]) -> Any:
        """Records to one topic partition as aiokafka batches; the future of the last batch.

        Handed to aiokafka's accumulator, so Faust's commit flush waits for them as for any
        send. `send_batch` waits while the accumulator is full: the back-pressure wanted.
        """
        producer = self.app.producer._ensure_producer()  # type: ignore[attr-defined]  # on Producer, not ProducerT
        fut, builder = None, producer.create_batch()
        for key, value in records:
            if builder.append(key=key, value=value, timestamp=None) is None:
                fut = self._watch(await producer.send_batch(builder, topic, partition=partition))
                builder = producer.create_batch()
                if builder.append(key=key, value=value, timestamp=None) is None:
                    raise ValueError(f"a record of {len(value or b'')} bytes is larger than a producer batch")
        if builder.record_count():
            fut = self._watch(await producer.send_batch(builder, topic, partition=partition))
        return fut

    def _watch(self, fut: Any) -> Any:
        """Remember a send that failed: the next commit refuses to go past it (see below)."""
        def done(f: Any) -> None:
            if not f.cancelled() and f.exception() is not None and self.send_failure is None:
                self.send_failure = f.exception()
        fut.add_done_callback(done)
        return fut


def _refuse_commits_after_failed_sends(worker: Worker) -> None:
    """Faust commits offsets after `producer.flush()`, which returns once every batch is done,
    failed or not: a batch Kafka refused would be committed past and lost. Here the flush
    raises instead, the commit does not happen, and the worker stops; its successor reads
    those events again."""
    producer = worker.app.producer
    flush = producer.flush

    async def checked_flush() -> None:
        await flush()
        if worker.send_failure is not None:
            raise ProducerSendError(f"a batch of table or output records was not written: {worker.send_failure!r}")

    producer.flush = checked_flush  # type: ignore[method-assign]


def _raw_topic(app: faust.App, name: str, partitions: int) -> Any:
    # Raw bytes in and out: the agents validate themselves, so a malformed record becomes
    # a dead letter instead of a deserialisation error that drops it.
    return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw",
                     value_serializer="raw", partitions=partitions)


def _table(app: faust.App, name: str, partitions: int) -> Any:
    # Keys and values go to the changelog as JSON (a str key as a JSON string): the gateway
    # reads the changelogs without Faust, and app/batched_writes.py writes rows the same way.
    return app.Table(name, default=None, key_type=str, partitions=partitions)


class LeanMonitor(Monitor):
    """Faust's monitor without its per-message statistics.

    Nothing reads them (Faust's web views are off; the worker's figures are app/metrics.py),
    yet Faust calls a dozen of these hooks per event. The stream inbound time is kept: the
    consumer's livelock check reads it to say a stream has stopped.
    """

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        pass

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
        self.stream_inbound_time[tp] = monotonic()

    def on_stream_event_out(self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None) -> None:
        pass

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        pass

    def on_table_get(self, table: Any, key: Any) -> None:
        pass

    def on_table_set(self, table: Any, key: Any, value: Any) -> None:
        pass

    def on_send_initiated(self, producer: Any, topic: str, message: Any, keysize: int, valsize: int) -> None:
        pass

    def on_send_completed(self, producer: Any, state: Any, metadata: Any) -> None:
        pass


def broker_credentials(settings: Settings) -> Credentials | None:
    """Faust's form of the security settings (the worker's principal); None for PLAINTEXT."""
    protocol = settings.kafka.security_protocol
    context = kafka_ssl_context(settings)
    if protocol.startswith("SASL"):
        # SASL_SSL when given a context, SASL_PLAINTEXT without (as SASLCredentials decides).
        return SASLCredentials(username=settings.kafka.username, password=settings.kafka.password,
                               mechanism=settings.kafka.sasl_mechanism, ssl_context=context)
    if protocol == "SSL":
        return SSLCredentials(context)
    return None


def create_worker(settings: Settings, metrics: Metrics | None = None) -> Worker:
    (settings.runtime.state_dir / "worker").parent.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.topics.app_id,
        broker=settings.kafka.faust_broker,
        broker_credentials=broker_credentials(settings),
        store=settings.worker.store,
        datadir=str(settings.runtime.state_dir / "worker"),
        topic_partitions=settings.topics.partitions,
        # The gateway is its own process. `faust worker` turns Faust's web server on unless
        # given --without-web; if it runs, it is loopback-only and without table routes.
        web_enabled=False,
        web_bind="127.0.0.1",
        web_tables_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
        autodiscover=False,
        monitor=LeanMonitor(),
        producer_max_request_size=settings.limits.request_bytes * 2,
        consumer_max_fetch_size=settings.limits.request_bytes * 2,
        # Every event writes three or four records (changelogs, the forward). aiokafka lingers
        # per partition batch and keeps one request in flight, so with 16 partitions written
        # a 10 ms linger still sent a request every 1.5 events (bench/ingest.py: 1.8 CPU-ms
        # per event); 100 ms fills them. It delays changelog followers by as much, no more.
        producer_linger=0.1,
        producer_max_batch_size=512 * 1024,
        broker_commit_every=1000,
        broker_commit_interval=1.0,
    )
    setattr(app, faust_compat.FETCH_WAIT, settings.worker.fetch_wait_s)
    make_flush_complete(app.producer.buffer)
    n = settings.topics.partitions
    worker = Worker(
        app=app,
        settings=settings,
        metrics=metrics or Metrics(),
        events_topic=_raw_topic(app, settings.topics.events, n),
        catalog_topic=_raw_topic(app, settings.topics.catalog, n),
        item_events_topic=_raw_topic(app, settings.topics.item_events, n),
        dead_letters_topic=_raw_topic(app, settings.topics.dead_letters, n),
        samples_topic=_raw_topic(app, settings.topics.samples, 1),
        model_updates_topic=_raw_topic(app, settings.topics.model_updates, 1),
        users=_table(app, user_profiles.NAME, n),
        items=_table(app, item_stats.NAME, n),
        catalog=_table(app, catalog.NAME, n),
        seen=_table(app, seen_events.NAME, n),
        campaigns_topic=_raw_topic(app, settings.topics.campaigns, n),
        campaigns=_table(app, campaigns.NAME, n),
        ad_spend=_table(app, ad_spend.NAME, n),
        charged_tokens=_table(app, charged_tokens.NAME, n),
    )
    worker.sweeps = {name: TableSweep(keep_s, worker.metrics.rows_expired.labels(table=name))
                     for name, keep_s in ((seen_events.NAME, settings.worker.dedup_window_s),
                                          (charged_tokens.NAME, charged_tokens.KEEP_S))}
    _refuse_commits_after_failed_sends(worker)
    # Imported here: agents depend on the Worker type above.
    from agents import campaign_changes, catalog_changes, item_events, user_events

    user_events.register(worker)
    item_events.register(worker)
    catalog_changes.register(worker)
    campaign_changes.register(worker)
    if settings.learner.enabled:
        # Only then: the learner loads torch, which a worker of agents alone does without.
        from app import learner_timer

        worker.learner = learner_timer.register(worker)
    return worker

