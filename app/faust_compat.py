"""Six fixes to faust-streaming's (0.15.x) offset handling, which lost events on rebalance
and restart, and two to its per-message cost.

Found by tests/integration/test_scale_out.py (a worker SIGKILLed, another added): an
item-events record was never applied, yet its offset was committed. The group's commit log
showed the first commit of that partition at the record's offset, then the next one past it.

1. A message the stream skips because a rebalance began after it was fetched (flow control
   stopped, or a new consumer generation) is acked by Faust's stream "so the lag does not
   grow". On a partition that stays with the worker, that ack survives the rebalance and the
   next commit goes past the message, although it was never processed; the seek to the
   committed offset that follows a rebalance would have fetched it again. Here such acks are
   refused: the message is fetched again and processed (the tables' position checks make a
   second delivery harmless).
2. `Consumer._new_offset` refuses to commit past a gap at the head of the acked offsets only
   when the gap is two or more (`min(acked) - committed > 1`), and not at all when the
   committed offset is 0: a single unacked message at the head (case 1) was committed past.
   Here any gap at the head waits (gaps Faust knows of, such as compacted-away offsets, are
   filled in first, as before).
3. After a rebalance Faust seeks each assigned partition to its committed offset, but
   aiokafka seeks only where one exists (and is above 0). A partition nobody has committed
   yet (its first owner was killed before its first commit) kept the position the fetcher
   had reached while the tables were restored, and what the stream skipped meanwhile (1.)
   was never fetched again: the test saw a new owner start 899 records into such a
   partition. Here those partitions are sought to their beginning, where the reset policy
   ("earliest") would have put a fresh consumer.

4. For every message it fetches, Faust's consumer hands it to the streams through
   `wait_first(callback(message), suspend_flow.wait())`: four tasks, an `asyncio.wait` and
   three cancellations, a tenth of the worker's CPU once its tables were batched
   (bench/ingest.py). Here the callback's first step runs inline; only when it has to wait
   (a full stream buffer) does it go on in a task raced against `suspend_flow`, as in Faust.
   An earlier version awaited the whole callback inline: blocked on a full buffer through a
   rebalance, it returned after the seek to the committed offset, and the drain loop then
   set the partition's read offset (and fix 5 its position) past records that were never
   handed over: runs of records skipped until a restart (the scale-out and kill tests).

5. `Consumer.getmany` hands a fetched batch to the streams record by record and stops half
   way when the flow stops or the generation changes; aiokafka's position is already past
   the whole batch. It seeks back only if the flow is still stopped at its next call: stopped
   and resumed in between (a worker's start, while its tables recover), the rest of the
   batch was never read again, and the next record's offset jump was taken for a known gap
   and committed over (tests/integration/test_ad_spend_kill.py lost ~400 events a partition
   after a restart). Here every partition whose records were not all handed over is sought
   back to its first record not handed over.

6. When table recovery ends, Faust resumes the stream partitions, then seeks them to their
   committed offsets, then resumes the app's flow control, which clears every stream's
   queue. The flow is already running (recovery resumed it to read the changelogs), so
   records fetched while the seek awaited went into the queues and were cleared: never
   processed, and the fetch position already past them; the next record's offset jump was
   taken for a known gap and committed over (tests/integration/test_ad_spend_kill.py: the
   restarted worker skipped ~210 events in three of four partitions, about 1 run in 10).
   Here the seek comes first, while the stream partitions are still paused, and the
   partitions resume in the same step as the flow: nothing is handed over in between.
7. A stream's queue is cleared (`FlowControlQueue.clear`) without waking a put waiting for
   room: asyncio wakes putters only on a get, and the stream waits on the now empty queue.
   A hand-over blocked on a full queue at a clear waited forever, and with it the whole
   fetch loop (a restarted worker stood still after ~200 events). Here a clear wakes them.

8. Faust's worker consumer fetches with aiokafka's `fetch_min_bytes` of 1: the broker answers
   a fetch as soon as one record is there, so at a shop's ordinary rates the worker fetched
   hundreds of times a second, a few records each, and parsing fetch responses and sending
   requests took most of its CPU (py-spy at 500 events/s: 0.86 CPU-ms an event, against
   0.11 at 3,000/s, where fetches fill). An app given `FETCH_WAIT` (seconds) fetches when a
   MiB is waiting or that long has passed.

Imported by the worker (app/worker.py) before the app is built.
"""
from __future__ import annotations

import asyncio
import logging
import types
from typing import Any

from faust.tables.recovery import Recovery
from faust.transport.consumer import Consumer
from mode import Service
from mode.utils.queues import FlowControlQueue
from mode.services import WaitResults
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.utils.functional import consecutive_numbers
from intervaltree import IntervalTree

log = logging.getLogger(__name__)
_ack = Consumer.ack
FETCH_WAIT = "streamrank_fetch_wait_s"  # an attribute of the faust.App (see 8.)
FETCH_MIN_BYTES = 1 << 20


def ack(self: Any, message: Any) -> bool:
    app, generation = self.app, message.generation_id
    if not app.flow_control.is_active() or (generation is not None and generation != app.consumer_generation_id):
        return False  # skipped by a stream mid-rebalance: it is fetched again after the seek
    return bool(_ack(self, message))


def _new_offset(self: Any, tp: Any) -> int | None:
    """Faust's `_new_offset`, with any gap at the head of the acked offsets waited for."""
    acked = self._acked[tp]
    if not acked:
        return None
    max_offset = max(acked)
    gap_for_tp: IntervalTree = self._gap[tp]
    if gap_for_tp:
        candidates = sorted(gap_for_tp.overlap(0, max_offset), key=lambda x: x.begin)
        if candidates:
            known_gaps: list[int] = []
            for entry in candidates:
                known_gaps.extend(range(entry.begin, entry.end))
            acked.extend(known_gaps)
            gap_for_tp.chop(0, max(known_gaps[-1], max_offset + 1))
    acked.sort()
    committed = self._committed_offset[tp]
    if committed is not None and acked[0] > committed:
        return None  # an offset at the head is not processed yet
    batch = next(consecutive_numbers(acked))
    acked[: len(batch)] = []
    self._acked_index[tp].difference_update(batch)
    return int(batch[-1]) + 1


async def seek_to_committed(self: Any) -> Any:
    """Each assigned partition to its committed offset, or to its beginning without one."""
    consumer = self._ensure_consumer()
    committed = await self.call_thread(consumer.seek_to_committed)
    uncommitted = [tp for tp, offset in committed.items() if not offset]  # None or 0: not sought
    if uncommitted:
        await self.call_thread(_seek_to_start, consumer, uncommitted)  # on the consumer's thread
    return committed


async def _seek_to_start(consumer: Any, partitions: list[Any]) -> None:
    # To an offset, not `seek_to_beginning`: that leaves the position unset until the next
    # fetch, and Faust's livelock check reads it (an AssertionError crashed the worker).
    for tp, offset in (await consumer.beginning_offsets(partitions)).items():
        consumer.seek(tp, offset)


_EVENT_WAIT = asyncio.Event.wait.__code__  # faust.transport.consumer's suspend_flow is an asyncio.Event


async def wait_first(self: Any, *coros: Any, timeout: Any = None) -> Any:
    """`Service.wait_first`, without its tasks when the drain loop's callback need not wait."""
    if not (len(coros) == 2 and timeout is None and not self.suspend_flow.is_set()
            and getattr(coros[1], "cr_code", None) is _EVENT_WAIT):
        return await Service.wait_first(self, *coros, timeout=timeout)
    callback = coros[0]
    try:
        waiting_on = callback.send(None)
    except StopIteration as done:
        coros[1].close()  # the suspend_flow.wait() coroutine, never started
        return WaitResults([callback], [done.value], False)
    except BaseException:
        coros[1].close()
        raise
    # It has to wait: the rest runs as Faust runs all of it, stopped when the flow is.
    return await Service.wait_first(self, _go_on(callback, waiting_on), coros[1], timeout=timeout)


async def _go_on(coro: Any, waiting_on: Any) -> Any:
    return await _resumed(coro, waiting_on)


@types.coroutine
def _resumed(coro: Any, waiting_on: Any) -> Any:
    """Drive a coroutine whose first step ran by hand, from the future it waits on."""
    while True:
        try:
            sent = yield waiting_on
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # noqa: BLE001  (a cancellation: thrown into the callback, as in a task)
            try:
                waiting_on = coro.throw(exc)
            except StopIteration as done:
                return done.value
        else:
            try:
                waiting_on = coro.send(sent)
            except StopIteration as done:
                return done.value


async def getmany(self: Any, timeout: float) -> Any:
    """Faust's `Consumer.getmany`, seeking back what it does not hand over (fix 5)."""
    records, active_partitions = await self._wait_next_records(timeout)
    generation_id = self.app.consumer_generation_id
    if records is None or self.should_stop:
        return
    if not self.flow_active:
        try:
            await self.perform_seek()
        except Exception as exc:  # noqa: BLE001  (as Faust: the next call tries again)
            log.warning("exception performing seek when flow not active %r", exc)
        return
    handed: dict[Any, int] = {}  # tp -> offset after the last record handed over
    try:
        for tp, record in self.scheduler.iterate(records):
            if not self.flow_active or self.app.consumer_generation_id != generation_id:
                break
            if active_partitions is None or tp in active_partitions or tp in self._buffered_partitions:
                self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                handed[tp] = record.offset + 1
                yield tp, self._to_message(tp, record)
    finally:
        await _seek_back(self, records, handed)


async def _seek_back(consumer: Any, records: Any, handed: dict[Any, int]) -> None:
    assignment = consumer.assignment()
    for tp, batch in records.items():
        if not batch:
            continue
        start = handed.get(tp, batch[0].offset)
        if start <= batch[-1].offset and tp in assignment:
            log.info("seeking %s back to %d: %d fetched records not handed over", tp, start,
                     batch[-1].offset - start + 1)
            await consumer.seek(tp, start)


async def on_recovery_completed(self: Any, generation_id: int = 0) -> None:
    """Faust's `Recovery.on_recovery_completed`, seeking before the streams resume (fix 6)."""
    self.log.info("Restore complete!")
    await self.app.on_rebalance_complete.send()
    self._set_recovery_ended()
    callbacks = [asyncio.ensure_future(table.on_recovery_completed(self.actives_for_table[table],
                                                                    self.standbys_for_table[table]))
                 for table in self.tables.values()]
    if callbacks:
        await asyncio.wait(callbacks)
    if not await _seek_then_resume(self, generation_id):
        return
    if not self.app.assignor.assigned_standbys():
        self.tables.on_standbys_ready()
    self.app.on_rebalance_end()
    self.log.info("Worker ready")


async def _resume_streams(self: Any, generation_id: int = 0) -> None:
    """Faust's `Recovery._resume_streams` (no tables to recover), seeking first (fix 6)."""
    await self.app.on_rebalance_complete.send()
    if not await _seek_then_resume(self, generation_id):
        return
    self.tables.on_standbys_ready()
    self.app.on_rebalance_end()
    self.log.info("Worker ready")


async def _seek_then_resume(recovery: Any, generation_id: int) -> bool:
    """Seek the paused stream partitions, then resume them with the flow; False if the group
    rebalanced again meanwhile (the next recovery does this)."""
    app, consumer = recovery.app, recovery.app.consumer
    if app.consumer_generation_id != generation_id:
        recovery.log.warning("Recovery rebalancing again")
        return False
    assignment = consumer.assignment()
    if assignment:
        recovery.log.info("Seek stream partitions to committed offsets.")
        await recovery._wait(consumer.perform_seek(), timeout=app.conf.broker_request_timeout)
    if app.consumer_generation_id != generation_id:
        recovery.log.warning("Recovery rebalancing again")
        return False
    # From here to resume_flow() nothing awaits: no record reaches a queue before the clear.
    consumer.resume_partitions({tp for tp in assignment if not recovery._is_changelog_tp(tp)})
    recovery.completed.set()
    app.flow_control.resume()  # clears the streams' queues
    consumer.resume_flow()
    await app._fetcher.maybe_start()
    recovery.tables.on_actives_ready()
    return True


def clear(self: Any) -> None:
    """`FlowControlQueue.clear`, waking the puts that waited for room (fix 7)."""
    self._queue.clear()
    while self._putters:
        self._wakeup_next(self._putters)


Consumer.ack = ack  # type: ignore[method-assign]
Consumer.getmany = getmany  # type: ignore[method-assign]
Consumer.wait_first = wait_first  # type: ignore[method-assign]
AIOKafkaConsumerThread.seek_to_committed = seek_to_committed  # type: ignore[method-assign]
Consumer._new_offset = _new_offset  # type: ignore[method-assign]
Recovery.on_recovery_completed = on_recovery_completed  # type: ignore[method-assign]
Recovery._resume_streams = _resume_streams  # type: ignore[method-assign]
FlowControlQueue.clear = clear  # type: ignore[method-assign]


_create_worker_consumer = AIOKafkaConsumerThread._create_worker_consumer


def create_worker_consumer(self: Any, transport: Any) -> Any:
    """Faust's consumer, fetching in batches when the app asks for it (8.)."""
    consumer = _create_worker_consumer(self, transport)
    wait_s = getattr(self.app, FETCH_WAIT, None)
    if wait_s is not None:  # read by aiokafka when the consumer starts
        consumer._fetch_min_bytes = FETCH_MIN_BYTES
        consumer._fetch_max_wait_ms = max(1, round(wait_s * 1000))
    return consumer


AIOKafkaConsumerThread._create_worker_consumer = create_worker_consumer  # type: ignore[method-assign]
