"""Sending a record that cannot be used to the dead-letter topic, with its reason."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from agents.context import WorkerContext
from tables.wire.dead_letters import dead_letter_headers, reason_label

if TYPE_CHECKING:
    from faust.types import EventT

log = logging.getLogger(__name__)


async def send_dead_letter(worker: WorkerContext, source: str, event: "EventT[Any]", reason: str) -> None:
    """The original bytes go unchanged as the value; where they came from and why, as headers."""
    msg = event.message
    headers = dead_letter_headers(reason, msg.topic, msg.partition, msg.offset)
    value = msg.value if isinstance(msg.value, bytes) else bytes(msg.value or b"")
    await worker.dead_letters_topic.send(key=msg.key, value=value, headers=headers)
    worker.metrics.dead_letters.labels(source=source, reason=reason_label(reason)).inc()
    log.warning("dead letter from %s[%d]@%d: %s", msg.topic, msg.partition, msg.offset, reason)
