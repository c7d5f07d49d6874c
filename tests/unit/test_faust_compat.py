"""app/faust_compat.py: Faust never commits past an event that was not processed."""
from collections import defaultdict
from types import SimpleNamespace

from intervaltree import IntervalTree

from app.faust_compat import ack, _new_offset

TP = ("events", 0)


def consumer(committed=None, acked=(), generation=5, flowing=True):
    app = SimpleNamespace(consumer_generation_id=generation,
                          flow_control=SimpleNamespace(is_active=lambda: flowing),
                          topics=SimpleNamespace(acks_enabled_for=lambda topic: True))
    c = SimpleNamespace(app=app, _acked=defaultdict(list), _acked_index=defaultdict(set), _gap=defaultdict(IntervalTree),
                        _committed_offset=defaultdict(lambda: None), _unacked_messages=set(), _n_acked=0,
                        _waiting_for_ack=None)
    c._committed_offset[TP] = committed
    c._acked[TP].extend(acked)
    c._acked_index[TP].update(acked)
    return c


class Message(SimpleNamespace):
    __hash__ = object.__hash__  # Faust keeps unacked messages in a set


def message(offset, generation=5):
    return Message(tp=TP, topic="events", offset=offset, acked=False, generation_id=generation)


def test_a_gap_at_the_head_is_never_committed_past():
    assert _new_offset(consumer(committed=2, acked=[3, 4, 5]), TP) is None  # Faust committed 6 here
    assert _new_offset(consumer(committed=0, acked=[1, 2]), TP) is None  # and 3 here
    assert _new_offset(consumer(committed=2, acked=[2, 3, 5]), TP) == 4
    assert _new_offset(consumer(committed=None, acked=[0, 1]), TP) == 2


def test_gaps_faust_knows_of_are_still_filled_in():
    c = consumer(committed=2, acked=[2, 5, 6])
    c._gap[TP].addi(3, 5)  # offsets 3 and 4 do not exist (compacted away)
    assert _new_offset(c, TP) == 7


def test_a_message_skipped_mid_rebalance_is_not_acked():
    c = consumer(generation=6)
    assert ack(c, message(3, generation=5)) is False  # fetched in the generation before
    assert ack(consumer(flowing=False), message(3)) is False  # flow stopped: a rebalance began
    assert c._acked[TP] == []
    c = consumer()
    assert ack(c, message(3)) is True and c._acked[TP] == [3]


async def test_partitions_without_a_committed_offset_are_read_from_their_beginning():
    from app.faust_compat import seek_to_committed

    class Client:  # aiokafka's consumer: seeks only where an offset above 0 was committed
        def __init__(self):
            self.to_beginning = []

        async def seek_to_committed(self):
            return {"p0": None, "p1": 0, "p2": 7}

        async def beginning_offsets(self, partitions):
            return {tp: 3 for tp in partitions}  # the log starts at 3 (older records deleted)

        def seek(self, tp, offset):
            self.to_beginning.append((tp, offset))

    client = Client()

    async def call_thread(fn, *args):
        return await fn(*args)

    thread = SimpleNamespace(_ensure_consumer=lambda: client, call_thread=call_thread)
    assert await seek_to_committed(thread) == {"p0": None, "p1": 0, "p2": 7}
    assert client.to_beginning == [("p0", 3), ("p1", 3)]


async def test_records_of_a_fetch_not_handed_over_are_fetched_again():
    """The flow stops half way through a fetched batch: each partition is sought back to its
    first record not handed over, where Faust left the position past the whole batch."""
    from faust.transport.utils import DefaultSchedulingStrategy
    from faust.types import TP as FaustTP

    from app.faust_compat import getmany

    tp0, tp1 = FaustTP("events", 0), FaustTP("events", 1)
    batch = {tp0: [SimpleNamespace(offset=o) for o in range(10, 14)],
             tp1: [SimpleNamespace(offset=o) for o in range(20, 22)]}
    sought = []

    class Consumer(SimpleNamespace):
        async def _wait_next_records(self, timeout):
            return batch, None

        async def seek(self, tp, offset):
            sought.append((tp, offset))

    c = Consumer(app=SimpleNamespace(consumer_generation_id=1, monitor=SimpleNamespace(track_tp_end_offset=lambda *a: None)),
                 should_stop=False, flow_active=True, scheduler=DefaultSchedulingStrategy(), _buffered_partitions=set(),
                 highwater=lambda tp: 99, _to_message=lambda tp, record: (tp, record.offset),
                 assignment=lambda: {tp0, tp1})
    handed = []
    async for _, message in getmany(c, timeout=1.0):
        handed.append(message)
        if len(handed) == 3:
            c.flow_active = False  # a rebalance or a restart's recovery stops the flow
    assert handed == [(tp0, 10), (tp1, 20), (tp0, 11)]
    assert sorted(sought) == [(tp0, 12), (tp1, 21)]

    sought.clear()
    c.flow_active = True
    assert len([m async for m in getmany(c, timeout=1.0)]) == 6 and sought == []  # all handed over


class Drain(SimpleNamespace):
    """What wait_first needs of Faust's consumer: its suspend_flow event and Service's methods."""

    def __init__(self):
        import asyncio
        super().__init__(suspend_flow=asyncio.Event(), _stopped=asyncio.Event(), _crashed=asyncio.Event(),
                         loop=asyncio.get_running_loop())


async def test_a_callback_that_need_not_wait_runs_inline():
    import asyncio

    from app.faust_compat import wait_first
    drain, steps = Drain(), []

    async def callback():
        steps.append(asyncio.current_task())
        return "handed over"

    result = await wait_first(drain, callback(), drain.suspend_flow.wait())
    assert result.results == ["handed over"] and steps == [asyncio.current_task()]  # no task of its own


async def test_a_callback_that_waits_finishes_in_a_task_while_the_flow_goes_on():
    import asyncio

    from app.faust_compat import wait_first
    drain, room = Drain(), asyncio.Event()

    async def callback():  # a full stream buffer: waits for room, then hands the message over
        await room.wait()
        await asyncio.sleep(0)
        return "handed over"

    waiting = asyncio.ensure_future(wait_first(drain, callback(), drain.suspend_flow.wait()))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    room.set()
    assert (await asyncio.wait_for(waiting, 1)).results == ["handed over"]


async def test_a_callback_waiting_when_the_flow_stops_is_cancelled_at_once():
    # The fault this guards: awaited inline, the callback outlived the rebalance and the drain
    # loop then marked its partition read past records never handed over.
    import asyncio

    from app.faust_compat import wait_first
    drain, room, cancelled = Drain(), asyncio.Event(), []

    async def callback():
        try:
            await room.wait()
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        return "handed over"

    waiting = asyncio.ensure_future(wait_first(drain, callback(), drain.suspend_flow.wait()))
    await asyncio.sleep(0.01)
    drain.suspend_flow.set()  # Consumer.stop_flow(): a rebalance began
    result = await asyncio.wait_for(waiting, 1)
    await asyncio.sleep(0)
    assert result.results == [True] and cancelled == [True]  # suspend_flow won, the callback stopped


async def test_a_callback_that_fails_at_once_raises_in_the_drain_loop():
    import pytest

    from app.faust_compat import wait_first
    drain = Drain()

    async def callback():
        raise ValueError("bad record")

    with pytest.raises(ValueError):
        await wait_first(drain, callback(), drain.suspend_flow.wait())


async def test_recovery_seeks_the_stream_partitions_before_they_resume():
    """Fix 6: nothing may be fetched for a stream partition between its resume and the flow
    control's resume, which clears the streams' queues; so the seek comes while it is paused."""
    from faust.tables.recovery import Recovery

    import app.faust_compat  # noqa: F401  (installs the fixes)

    events, changelog = ("events", 0), ("users-changelog", 0)
    steps = []

    class Consumer:
        paused = {events, changelog}

        def assignment(self):
            return {events, changelog}

        async def perform_seek(self):
            steps.append(("seek", events in self.paused))  # the drain loop fetches only what is not paused

        def resume_partitions(self, tps):
            self.paused -= set(tps)
            steps.append(("resume partitions", sorted(tps)))

        def resume_flow(self):
            steps.append("resume flow")

    async def no_op(*args, **kwargs):
        return None

    async def wait(coro, timeout=None):
        return await coro

    faust_app = SimpleNamespace(consumer=Consumer(), consumer_generation_id=3, conf=SimpleNamespace(broker_request_timeout=5),
                          on_rebalance_complete=SimpleNamespace(send=no_op),
                          flow_control=SimpleNamespace(resume=lambda: steps.append("resume flow control (clears queues)")),
                          _fetcher=SimpleNamespace(maybe_start=no_op), on_rebalance_end=lambda: None,
                          assignor=SimpleNamespace(assigned_standbys=lambda: set()))
    recovery = SimpleNamespace(app=faust_app, log=SimpleNamespace(info=lambda *a: None, warning=lambda *a: None),
                               tables=SimpleNamespace(values=lambda: [], on_actives_ready=lambda: None,
                                                      on_standbys_ready=lambda: None),
                               _set_recovery_ended=lambda: None, completed=SimpleNamespace(set=lambda: None),
                               _wait=wait, _is_changelog_tp=lambda tp: tp == changelog)
    await Recovery.on_recovery_completed(recovery, generation_id=3)
    assert steps == [("seek", True), ("resume partitions", [events]), "resume flow control (clears queues)",
                     "resume flow"]


async def test_a_put_waiting_on_a_full_stream_queue_goes_on_after_a_clear():
    """Fix 7: Faust clears the streams' queues when the flow resumes; a hand-over waiting for
    room in a full queue must not wait forever for a get that the empty queue never gets."""
    import asyncio

    from mode.utils.queues import FlowControlEvent, FlowControlQueue

    import app.faust_compat  # noqa: F401  (installs the fixes)

    queue = FlowControlQueue(maxsize=2, flow_control=FlowControlEvent(initially_suspended=False),
                             clear_on_resume=True)
    queue.put_nowait("old 1")
    queue.put_nowait("old 2")
    waiting = asyncio.ensure_future(queue.put("new"))
    await asyncio.sleep(0.01)
    assert not waiting.done()  # full: the put waits for room
    queue.clear()
    await asyncio.wait_for(waiting, 1)
    assert queue.get_nowait() == "new"


def test_the_worker_consumer_fetches_in_batches_of_its_settings_wait(tmp_path):
    """Fix 8: Kafka's default answers a fetch with one record; the worker's waits for a MiB or the wait."""
    import asyncio

    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    from app.faust_compat import FETCH_MIN_BYTES
    from app.metrics import Metrics
    from app.settings import Settings
    from app.worker import create_worker

    async def made(settings):
        app = create_worker(settings, Metrics()).app
        app.finalize()
        consumer = AIOKafkaConsumerThread(app.consumer)._create_worker_consumer(app.transport)
        try:
            return consumer._fetch_min_bytes, consumer._fetch_max_wait_ms
        finally:
            await consumer.stop()  # never started: only closes what aiokafka set up

    settings = Settings().replace(store="memory://", state_dir=tmp_path, app_id=f"t-{tmp_path.name}")
    assert asyncio.run(made(settings.replace(worker_fetch_wait_s=0.25))) == (FETCH_MIN_BYTES, 250)
    assert asyncio.run(made(settings)) == (FETCH_MIN_BYTES, 100)
