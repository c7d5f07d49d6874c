"""A producer flush that really waits, so Faust commits no offset ahead of its outputs.

Faust commits a consumer offset after `producer.flush()`. faust-streaming's buffer flush
(0.15.x) returns as soon as one message takes over 0.1 s to hand to aiokafka, and it does
not count the message being handed over at that moment. Whatever `send_soon` queued
(changelog records, the item-events forward) can then be behind a committed offset, and a
SIGKILL loses it for good: the integration kill test lost one item count this way. Here the
flush waits until the queue is empty and nothing is in hand; aiokafka's own flush, which
Faust calls next, then waits for the broker's acks.

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
    handing_over = 0
    send_pending = buffer._send_pending
    partial_flush = buffer.flush
    buffer.max_messages = MAX_QUEUED

    async def counted_send_pending(fut: Any) -> None:
        nonlocal handing_over
        handing_over += 1
        try:
            await send_pending(fut)
            # What queued meanwhile goes now, in order, without a wake-up per message.
            queue = buffer.pending
            while not queue.empty():
                await send_pending(queue.get_nowait())
        finally:
            handing_over -= 1

    async def flush() -> None:
        while buffer.size or handing_over:
            if buffer.state != "running":
                # Stopping: the sender task is gone; Faust's own flush says so.
                await partial_flush()
                return
            buffer.message_sent.clear()
            try:
                await asyncio.wait_for(buffer.message_sent.wait(), timeout=0.1)
            except asyncio.TimeoutError:
                pass

    buffer._send_pending = counted_send_pending
    buffer.flush = flush
