"""Where accepted events go: Kafka in production; tests inject their own sink."""
from __future__ import annotations

from typing import Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from models.errors import BrokerUnavailable
from app.kafka_io import make_producer
from models.ads.campaigns import Campaign
from tables.wire.records import CatalogChange, UserEvent
from app.settings import Settings


class EventSink(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def send_events(self, events: list[UserEvent]) -> None: ...
    async def send_catalog(self, changes: list[CatalogChange]) -> None: ...
    async def send_campaigns(self, campaigns: list[Campaign]) -> None: ...
    async def send_model_command(self, command: bytes, headers: list[tuple[str, bytes]]) -> None: ...
    async def send_dead_letter(self, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> None: ...


class KafkaSink:
    """Produces with acks=all and waits for every ack before the request is answered."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        self._producer = make_producer(self.settings)
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()

    async def send_events(self, events: list[UserEvent]) -> None:
        topic = self.settings.topics.events
        await self._send([(topic, e.user_id, e.to_json()) for e in events])

    async def send_catalog(self, changes: list[CatalogChange]) -> None:
        topic = self.settings.topics.catalog
        await self._send([(topic, c.item_id, c.to_json()) for c in changes])

    async def send_campaigns(self, campaigns: list[Campaign]) -> None:
        """Keyed by campaign id: the worker's campaigns table keeps the latest of each."""
        topic = self.settings.topics.campaigns
        await self._send([(topic, c.campaign_id, c.to_json()) for c in campaigns])

    async def send_model_command(self, command: bytes, headers: list[tuple[str, bytes]]) -> None:
        """A signed admin command (from `tables.wire.updates.encode_command`) for the learner, on
        the model-commands topic it reads."""
        if self._producer is None:
            raise BrokerUnavailable("the Kafka producer is not started")
        try:
            await self._producer.send_and_wait(self.settings.topics.model_commands, command, key=b"rec",
                                               headers=headers)
        except KafkaError as exc:
            raise BrokerUnavailable(f"Kafka did not take the command: {exc}") from exc

    async def send_dead_letter(self, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> None:
        """A record a follower could not use (headers from `dead_letter_headers`)."""
        if self._producer is None:
            raise BrokerUnavailable("the Kafka producer is not started")
        try:
            await self._producer.send_and_wait(self.settings.topics.dead_letters, value or b"", key=key,
                                               headers=headers)
        except KafkaError as exc:
            raise BrokerUnavailable(f"Kafka did not take the dead letter: {exc}") from exc

    async def _send(self, records: list[tuple[str, str, bytes]]) -> None:
        if self._producer is None:
            raise BrokerUnavailable("the Kafka producer is not started")
        try:
            futures = [await self._producer.send(t, key=k.encode(), value=v) for t, k, v in records]
            for fut in futures:
                await fut
        except KafkaError as exc:
            raise BrokerUnavailable(f"Kafka did not take the events: {exc}") from exc
