"""An agent for a table keyed by the id its records carry (catalog items, campaigns), per event.

Such a table is partitioned by that id: a record keyed otherwise (no key, a non-UTF-8 one,
another id) goes round again under its id, as user events do by user, and is applied by the
partition that owns the row. A record that does not decode, or that `apply` refuses, is a
dead letter.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from faust.types import TopicT

from agents.context import WorkerContext
from agents.dead_letters import send_dead_letter
from models.errors import ValidationError

T = TypeVar("T")


def register_keyed_changes(worker: WorkerContext, topic: TopicT, name: str, source: str, read: Callable[[Any], T],
                           key_of: Callable[[T], str], apply: Callable[[T], None]) -> Any:
    """The agent `name` on `topic`: `read(message)` decodes, `apply` writes it where `key_of` is the key."""

    @worker.app.agent(topic, name=name)
    async def keyed_changes(stream: Any) -> None:
        async for event in stream.events():
            msg = event.message
            try:
                change = read(msg)
                key = key_of(change).encode()
                if msg.key == key:
                    apply(change)
                    continue
            except ValidationError as exc:
                await send_dead_letter(worker, source, event, exc.reason)
                continue
            await topic.send(key=key, value=msg.value)

    return keyed_changes
