"""A producer flush that really waits, so Faust commits no offset ahead of its outputs.

Faust commits a consumer offset after `producer.flush()`. faust-streaming's buffer flush
(0.15.x) returns as soon as one message takes over 0.1 s to hand to aiokafka, and it does
not count the message being handed over at that moment. Whatever `send_soon` queued
(changelog records, the item-events forward) can then be behind a committed offset, and a
SIGKILL loses it for good: the integration kill test lost one item count this way. Here the
flush waits until every message put before it began is handed over (not for an empty queue,
which a busy stream never leaves); aiokafka's own flush, which Faust calls next, then waits
for the broker's acks.

The hand-over also drains the queue in one go: Faust's sender task takes one message per
wake-up (queue get, publish, event set), which at four records per event was the worker's
largest single cost; and its back-pressure threshold (100 queued) is raised, so the fetcher
is not stalled, nor a warning logged, every few events.
"""
from __future__ import annotations

import asyncio
from typing import Any


MAX_QUEUED = 2000  # messages queued before the fetcher waits for the sender (Faust: 100)


def make_flush_complete(buffer: Any) -> None:
    """Patch one ProducerBuffer instance (before the producer starts)."""
    # Messages put and handed over so far: a flush waits for those put before it began.
    # Waiting for an empty buffer instead, as this did first, starved commits under a steady
    # stream (the agents keep adding while the commit waits): commits took seconds, and a
    # worker SIGKILLed before its first one left its partitions with nothing committed.
    counts = {"put": 0, "sent": 0}
    put, send_pending = buffer.put, buffer._send_pending
    partial_flush = buffer.flush
    buffer.max_messages = MAX_QUEUED

    def counted_put(fut: Any) -> None:
        put(fut)
        counts["put"] += 1

    async def counted_send_pending(fut: Any) -> None:
        await send_pending(fut)
        counts["sent"] += 1
        # What queued meanwhile goes now, in order, without a wake-up per message.
        queue = buffer.pending
        while not queue.empty():
            await send_pending(queue.get_nowait())
            counts["sent"] += 1

    async def flush() -> None:
        target = counts["put"]
        while counts["sent"] < target:
            if buffer.state != "running":
                # Stopping: the sender task is gone; Faust's own flush says so.
                await partial_flush()
                return
            buffer.message_sent.clear()
            try:
                await asyncio.wait_for(buffer.message_sent.wait(), timeout=0.1)
            except asyncio.TimeoutError:
                pass

    buffer.put = counted_put
    buffer._send_pending = counted_send_pending
    buffer.flush = flush
