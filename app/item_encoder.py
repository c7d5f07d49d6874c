"""The item encoder: computes each catalog item's text vector once, for every gateway.

Follows the catalog table's changelog (the gateway's follower and read model, restricted to
the catalog), encodes new or changed item texts in batches with the gateway's item tower,
and publishes each vector to the compacted item-vectors topic (`models.item_vectors`), a
tombstone when an item is deleted. Encoding runs on a thread of its own, in a process of its
own: it never holds up a gateway's event loop or a worker's agents.

At start it reads the topic back to learn which vectors are there already (their model and
text digests), so a restart publishes only what changed. Vectors are also kept in the on-disk
`VectorCache` the gateways kept before (same file): an item renamed back, or a topic made
afresh, costs no encoding.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from aiokafka import AIOKafkaProducer, TopicPartition

from app.gateway.changelog import ChangelogFollower
from app.gateway.read_model import ReadModel
from app.gateway.serving import item_text
from app.kafka_io import ensure_topics, make_consumer, make_producer
from app.metrics import Metrics
from app.settings import Settings
from tables.wire.names import changelog_topic
from models.encoder import DIM
from models.item_vectors import decode_vector, encode_vector, model_digest, text_digest
from models.errors import ValidationError
from models.vector_cache import VectorCache
from tables import catalog

log = logging.getLogger(__name__)
Encode = Callable[[Sequence[str]], torch.Tensor]  # texts -> normalised vectors [n, DIM]
PROGRESS_S = 10.0  # how often progress is logged while encoding


class ItemEncoder:
    """One process's encoder; `run` until cancelled. `encode` and `model_key` name the item tower."""

    def __init__(self, settings: Settings, encode: Encode, model_key: str, cache_path: Path | None = None) -> None:
        self.settings = settings
        self.encode = encode
        self.model = model_digest(model_key)
        self.published: dict[str, bytes] = {}  # item -> text digest of its vector on the topic
        self.pending: dict[str, str] = {}  # item -> text to encode and publish
        self.deleted: set[str] = set()  # items whose vector is on the topic: to tombstone
        self.encoded = 0  # texts encoded (not found in the cache)
        self.sent = 0  # vectors and tombstones published
        self.cache = VectorCache(cache_path, DIM) if cache_path is not None else None
        self.read_model = ReadModel(settings)
        self.follower: ChangelogFollower | None = None  # of the catalog changelog, once running
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="encode-items")

    async def run(self) -> None:
        """Read what is published, then follow the catalog and publish what it lacks, forever."""
        # The topic must be made compacted before anything is sent to it (a send would auto-create it).
        await ensure_topics(self.settings)
        await self.read_published()
        producer = make_producer(self.settings)
        await producer.start()
        sink = _GatewaysDeadLetter()
        self.follower = follower = ChangelogFollower(self.settings, self.read_model, Metrics(), sink)  # type: ignore[arg-type]
        follower.topics = {changelog_topic(self.settings, catalog.NAME): catalog.NAME}  # the catalog alone
        self.read_model.subscribe(self.on_change)
        await follower.start()
        try:
            await self._publish_loop(producer)
        finally:
            await follower.stop()
            await producer.stop()
            await asyncio.get_running_loop().run_in_executor(self._pool, self.save_cache)
            self._pool.shutdown(wait=False, cancel_futures=True)

    async def read_published(self) -> None:
        """The vectors on the topic now (to its end offsets): only what differs is published again."""
        topic = self.settings.topics.item_vectors
        consumer = make_consumer(self.settings, topic, group_id=None, enable_auto_commit=False)
        await consumer.start()
        ends: dict[TopicPartition, int] | None = None
        try:
            while True:
                for records in (await consumer.getmany(timeout_ms=200, max_records=10000)).values():
                    for rec in records:
                        self._published_record(rec.key, rec.value)
                assigned = consumer.assignment()  # every partition (no group), once metadata came
                if assigned and ends is None:
                    ends = await consumer.end_offsets(list(assigned))
                if ends is not None and all([await consumer.position(tp) >= end for tp, end in ends.items()]):
                    break
        finally:
            await consumer.stop()
        log.info("%d item vectors of this item tower on %s", len(self.published), topic)

    def _published_record(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        item = key.decode(errors="replace")
        try:
            vector = decode_vector(value) if value is not None else None
        except ValidationError:
            vector = None  # not ours to judge (the gateways dead-letter it): publish over it
        if vector is not None and vector.model == self.model:
            self.published[item] = vector.text
        else:
            self.published.pop(item, None)

    def on_change(self, table: str, key: str, old: object, new: object) -> None:
        """A catalog record: queue its text for encoding unless its vector is published."""
        if table != catalog.NAME:
            return
        if not catalog.is_live(new):
            self.pending.pop(key, None)
            if key in self.published:
                self.deleted.add(key)
            return
        text = item_text(new)  # type: ignore[arg-type]
        self.deleted.discard(key)
        if self.published.get(key) == text_digest(text):
            self.pending.pop(key, None)  # a price or stock change, or a restart: nothing to do
        else:
            self.pending[key] = text

    async def _publish_loop(self, producer: AIOKafkaProducer) -> None:
        loop = asyncio.get_running_loop()
        saved_at = logged_at = time.monotonic()
        while True:
            if not self.pending and not self.deleted:
                await asyncio.sleep(0.1)
            else:
                await self._publish_deletes(producer)
                batch = self._take_batch()
                if batch:
                    vectors = await loop.run_in_executor(self._pool, self._vectors, [t for _, t in batch])
                    await self._publish_vectors(producer, batch, vectors)
            if time.monotonic() - logged_at > PROGRESS_S:
                logged_at = time.monotonic()
                log.info("item vectors: %d published, %d encoded, %d waiting", self.sent, self.encoded, len(self.pending))
            if time.monotonic() - saved_at > self.settings.encoder.item_save_s:
                saved_at = time.monotonic()
                await loop.run_in_executor(self._pool, self.save_cache)

    def _take_batch(self) -> list[tuple[str, str]]:
        batch: list[tuple[str, str]] = []
        while self.pending and len(batch) < self.settings.encoder.item_batch:
            item = next(iter(self.pending))
            batch.append((item, self.pending.pop(item)))
        return batch

    async def _publish_vectors(self, producer: AIOKafkaProducer, batch: list[tuple[str, str]],
                               vectors: torch.Tensor) -> None:
        topic = self.settings.topics.item_vectors
        for (item, text), vector in zip(batch, vectors):
            await producer.send(topic, key=item.encode(), value=encode_vector(self.model, text, vector))
        await producer.flush()  # then it is published: a restart need not encode it again
        live = self.read_model.tables[catalog.NAME]
        for item, text in batch:
            self.published[item] = text_digest(text)
            if not catalog.is_live(live.get(item)):
                self.deleted.add(item)  # deleted while it was encoded: its vector must go again
        self.sent += len(batch)

    async def _publish_deletes(self, producer: AIOKafkaProducer) -> None:
        if not self.deleted:
            return
        items, self.deleted = sorted(self.deleted), set()
        for item in items:
            await producer.send(self.settings.topics.item_vectors, key=item.encode(), value=None)
        await producer.flush()
        for item in items:
            self.published.pop(item, None)
        self.sent += len(items)

    def _vectors(self, texts: Sequence[str]) -> torch.Tensor:
        """Encoding thread: vectors [n, DIM] of texts, from the cache where it has them."""
        found = [self.cache.get(t) for t in texts] if self.cache is not None else [None] * len(texts)
        missing = [t for t, v in zip(texts, found) if v is None]
        if missing:
            encoded = self.encode(missing)
            self.encoded += len(missing)
            if self.cache is not None:
                self.cache.put(missing, encoded)
            fresh = iter(encoded)
            found = [v if v is not None else next(fresh) for v in found]
        return torch.stack(found)  # type: ignore[arg-type]

    def save_cache(self) -> None:
        if self.cache is not None:
            self.cache.save()


class _GatewaysDeadLetter:
    """A catalog changelog record the read model cannot take is skipped (the follower logs it);
    every gateway dead-letters it already, a second copy from here would only be noise."""

    async def send_dead_letter(self, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> None:
        pass
