"""Follows the item-vectors topic from the start and hands the vectors to the dense searcher.

The changelog follower's loop (no consumer group, resume at the offsets reached after a broker
error, caught up once at the end offsets seen at assignment), with its own decoding: a batch
of records is decoded and handed over at once. A record that is not an item vector goes to
the dead letters; the item stays searchable by its text.
"""
from __future__ import annotations

from aiokafka import ConsumerRecord, TopicPartition

from app.gateway.changelog import ChangelogFollower
from app.gateway.dense_search import DenseSearch
from app.gateway.read_model import ReadModel
from app.gateway.sink import EventSink
from app.metrics import Metrics
from app.settings import Settings
from models.errors import ValidationError
from models.item_vectors import ItemVector, decode_vector

TABLE = "item-vectors"


class VectorFollower(ChangelogFollower):
    def __init__(self, settings: Settings, dense: DenseSearch, metrics: Metrics, sink: EventSink,
                 model: ReadModel) -> None:
        super().__init__(settings, model, metrics, sink)
        self.dense = dense
        self.topics = {settings.topics.item_vectors: TABLE}

    async def _apply(self, tp: TopicPartition, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        vectors: list[tuple[str, ItemVector | None]] = []
        for rec in records:
            if rec.offset < self._next.get(tp, 0):
                continue  # fetched before the seek of a reconnect: applied already
            try:
                vectors.append(_decode(rec.key, rec.value))
            except ValidationError as exc:
                await self._dead_letter(TABLE, rec, exc.reason)
            self._next[tp] = rec.offset + 1
        self.dense.on_vectors(vectors)


def _decode(key: bytes | None, value: bytes | None) -> tuple[str, ItemVector | None]:
    try:
        item = key.decode() if key is not None else ""
    except UnicodeDecodeError:
        item = ""
    if not item:
        raise ValidationError("an item-vectors key must be the item id in UTF-8")
    return item, decode_vector(value) if value is not None else None
