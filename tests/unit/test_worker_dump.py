"""app/worker_dump.py: what a stalled worker logs on SIGUSR1, per assigned partition."""
from types import SimpleNamespace

from faust.types import TP

from app.worker_dump import consumer_state


def test_each_assigned_partition_shows_where_fetching_and_committing_stand():
    events, changelog = TP("events", 0), TP("users-changelog", 0)
    state = {events: SimpleNamespace(_position=120, highwater=300, paused=False),
             changelog: SimpleNamespace(_position=0, highwater=9, paused=False)}
    client = SimpleNamespace(_subscription=SimpleNamespace(subscription=SimpleNamespace(
        assignment=SimpleNamespace(state_value=state.get))))
    consumer = SimpleNamespace(flow_active=True, _unacked_messages={1, 2}, _thread=SimpleNamespace(_consumer=client),
                               _active_partitions={events}, _paused_partitions={changelog}, _buffered_partitions=set(),
                               _read_offset={events: 119}, _committed_offset={events: 100}, _acked={events: [103, 101]},
                               assignment=lambda: {events, changelog})
    app = SimpleNamespace(consumer=consumer, flow_control=SimpleNamespace(is_active=lambda: True), rebalancing=False,
                          in_recovery=False, consumer_generation_id=4)
    lines = consumer_state(app).splitlines()
    assert lines[0] == "flow_active=True flow_control_active=True rebalancing=False in_recovery=False generation=4 unacked=2"
    assert lines[1] == ("events[0] position=120 highwater=300 paused=False faust_paused=False active=True "
                        "buffered=False read=119 committed=100 acked_head=[101, 103]")
    assert lines[2].startswith("users-changelog[0] position=0 highwater=9 paused=False faust_paused=True active=False")
