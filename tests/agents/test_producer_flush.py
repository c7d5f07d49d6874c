"""The worker's producer flush waits for every queued message, however slow the hand-over."""
import asyncio

import faust
import pytest

from app.producer_flush import make_flush_complete
from faust.exceptions import ProducerSendError
from faust.transport.producer import ProducerBuffer


def slow_buffer(delay_s: float, sent: list) -> ProducerBuffer:
    app = faust.App("flush-test", broker="memory://")
    buffer = ProducerBuffer()
    buffer.app = app

    async def slow_send(fut):
        await asyncio.sleep(delay_s)  # e.g. aiokafka waiting for metadata or buffer space
        sent.append(fut)

    buffer._send_pending = slow_send
    return buffer


@pytest.mark.parametrize("patched", [True, False])
async def test_flush_returns_only_when_slow_messages_are_handed_over(patched):
    sent: list = []
    buffer = slow_buffer(0.25, sent)
    if patched:
        make_flush_complete(buffer)
    await buffer.start()
    try:
        for i in range(3):
            buffer.put(i)
        await buffer.flush()
        if patched:
            assert sent == [0, 1, 2]
        else:
            # Faust's own flush gives up after 0.1 s: the reason for the patch.
            assert len(sent) < 3
            await asyncio.sleep(1.0)
    finally:
        await buffer.stop()


async def test_flush_waits_for_what_was_put_before_it_not_for_what_keeps_coming():
    sent: list = []
    buffer = slow_buffer(0.05, sent)
    make_flush_complete(buffer)
    await buffer.start()

    async def busy_stream():  # the agents keep writing while a commit flushes
        for i in range(100, 200):
            buffer.put(i)
            await asyncio.sleep(0.01)

    try:
        for i in range(3):
            buffer.put(i)
        producing = asyncio.ensure_future(busy_stream())
        await asyncio.wait_for(buffer.flush(), timeout=3.0)  # an empty queue never comes
        assert sent[:3] == [0, 1, 2] and not producing.done()
        producing.cancel()
    finally:
        while not buffer.pending.empty():  # what the cancelled stream left: not this test's
            buffer.pending.get_nowait()
        await buffer.stop()


async def test_a_commit_flush_fails_once_a_batch_send_failed(worker):
    """Faust commits after `producer.flush()`, which returns when sends are done, failed or not."""
    w, _ = worker
    await w.app.producer.flush()  # nothing failed: the flush passes
    failed: asyncio.Future = asyncio.get_running_loop().create_future()
    w._watch(failed)
    failed.set_exception(RuntimeError("NotEnoughReplicas"))
    await asyncio.sleep(0)  # the done-callback runs
    with pytest.raises(ProducerSendError, match="NotEnoughReplicas"):
        await w.app.producer.flush()
