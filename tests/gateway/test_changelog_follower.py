"""The gateway's changelog follower, driven with records as the consumer hands them over: what
the read model cannot take goes to the dead letters with its reason, a null value deletes,
and a reconnect resumes at the offsets already applied."""
import time

import orjson
from aiokafka import ConsumerRecord, TopicPartition

from app.gateway.changelog import ChangelogFollower
from app.gateway.read_model import ReadModel
from app.metrics import Metrics
from tables.wire.dead_letters import reason_label
from tables.wire.records import CatalogChange
from tables import catalog, item_stats, user_profiles
from tests.gateway.conftest import MemorySink


def follower(settings):
    sink = MemorySink()
    return ChangelogFollower(settings, ReadModel(settings), Metrics(), sink), sink


def records(tp, pairs, start=0):
    return [ConsumerRecord(tp.topic, tp.partition, start + i, 0, 0, key, value, None, 0, 0, ())
            for i, (key, value) in enumerate(pairs)]


def tp_of(f, table, partition=0):
    topic = next(t for t, name in f.topics.items() if name == table)
    return TopicPartition(topic, partition)


def item(title, ts=None):
    return orjson.dumps(catalog.to_item(CatalogChange("upsert", "i1", ts or time.time(), title=title)))


def stats():
    return orjson.dumps(item_stats.apply_event(item_stats.empty(), "view", time.time(), 0, 1, 86400.0, 3600.0))


def dead_reasons(sink):
    return [dict(h)["reason"].decode() for _, _, h in sink.dead_letters]


async def test_unusable_catalog_records_are_dead_lettered_and_the_valid_one_applied(settings):
    f, sink = follower(settings)
    tp = tp_of(f, catalog.NAME, 2)
    garbage = [
        (b'"i1"', b"not json", "not valid JSON"),
        (b"not json", item("x"), "not valid JSON"),
        (b"\xff\xfe", item("x"), "not valid JSON"),
        (None, item("x"), "the key must be a JSON string"),
        (b"42", item("x"), "the key must be a JSON string"),
        (b'"i1"', b"[1, 2]", "a catalog value must be an object"),
        (b'"i1"', b'{"title": "x"}', "a catalog value must be an object whose 'ts' is a number"),
        (b'"i1"', orjson.dumps({"title": "x", "ts": 1.0, "price": "cheap"}), "'price' is a number or null"),
    ]
    await f._apply(tp, records(tp, [(k, v) for k, v, _ in garbage] + [(b'"i1"', item("Drill"))]))
    assert f.model.tables[catalog.NAME]["i1"]["title"] == "Drill"
    got = dead_reasons(sink)
    assert len(got) == len(garbage)
    for (_, _, want), reason in zip(garbage, got):
        assert want in reason, (want, reason)
    assert [(k, v) for k, v, _ in sink.dead_letters] == [(k, v) for k, v, _ in garbage]  # original bytes
    assert dict(sink.dead_letters[0][2])["source_topic"] == tp.topic.encode()
    assert [dict(h)["source_offset"] for _, _, h in sink.dead_letters] == [str(i).encode() for i in range(8)]
    assert dict(sink.dead_letters[0][2])["source_partition"] == b"2"
    dead = f.metrics.dead_letters.labels(source="catalog-changelog", reason=reason_label(got[0]))._value.get()
    assert dead == 3  # the three records that are not JSON
    assert f.metrics.state_applied.labels(table=catalog.NAME)._value.get() == 1
    assert f._next[tp] == len(garbage) + 1


async def test_wrong_shapes_for_stats_and_profiles_are_dead_lettered(settings):
    f, sink = follower(settings)
    s_tp, p_tp = tp_of(f, item_stats.NAME), tp_of(f, user_profiles.NAME)
    await f._apply(s_tp, records(s_tp, [(b'"i1"', b'{"pop": 1}'), (b'"i1"', b'"hot"'), (b'"i1"', stats())]))
    await f._apply(p_tp, records(p_tp, [(b'"u1"', b'{"recent": 5}'),
                                        (b'"u1"', orjson.dumps(user_profiles.empty()))]))
    assert len(sink.dead_letters) == 3
    assert "item_stats value must be" in dead_reasons(sink)[0] and "user_profiles value" in dead_reasons(sink)[2]
    assert f.model.stats("i1")["counts"] == {"view": 1}
    assert "u1" in f.model.tables[user_profiles.NAME]


async def test_a_null_value_deletes_rather_than_being_garbage(settings):
    f, sink = follower(settings)
    tp = tp_of(f, catalog.NAME)
    await f._apply(tp, records(tp, [(b'"i1"', item("Drill")), (b'"i1"', None), (b'"i9"', None)]))
    assert "i1" not in f.model.tables[catalog.NAME] and sink.dead_letters == []


async def test_a_record_the_read_model_raises_on_is_dead_lettered_not_retried_forever(settings):
    f, sink = follower(settings)

    def broken_listener(table, key, old, new):
        if key == "bad":
            raise RuntimeError("listener bug")

    f.model.subscribe(broken_listener)
    tp = tp_of(f, catalog.NAME)
    await f._apply(tp, records(tp, [(b'"bad"', item("x")), (b'"i1"', item("Drill"))]))
    assert dead_reasons(sink) == ["could not be applied: RuntimeError('listener bug')"]
    assert f.model.tables[catalog.NAME]["i1"]["title"] == "Drill" and f._next[tp] == 2


class FakeConsumer:
    def __init__(self, assigned):
        self.assigned, self.seeks = set(assigned), []

    def assignment(self):
        return set(self.assigned)

    def seek(self, tp, offset):
        self.seeks.append((tp, offset))


async def test_a_reconnect_resumes_at_the_offsets_applied_not_the_start(settings):
    f, _ = follower(settings)
    tp, other = tp_of(f, catalog.NAME, 0), tp_of(f, catalog.NAME, 1)
    applied = []
    f.model.subscribe(lambda table, key, old, new: applied.append(new["title"]))
    await f._apply(tp, records(tp, [(b'"i1"', item("one")), (b'"i1"', item("two"))]))
    # A new consumer after a broker error: each partition this follower had read is sought
    # to its next offset once; one it never read starts where the consumer puts it.
    consumer = FakeConsumer([tp, other])
    resumed = f._resume(consumer, set())
    assert consumer.seeks == [(tp, 2)] and resumed == {tp, other}
    f._resume(consumer, resumed)
    assert consumer.seeks == [(tp, 2)]
    # Records fetched before the seek took effect are not applied a second time.
    await f._apply(tp, records(tp, [(b'"i1"', item("one")), (b'"i1"', item("two")), (b'"i1"', item("three"))]))
    assert applied == ["one", "two", "three"] and f._next[tp] == 3


async def test_a_large_batch_hands_the_loop_to_requests_while_it_is_applied(settings, monkeypatch):
    import asyncio
    from app.gateway import changelog
    monkeypatch.setattr(changelog, "APPLY_SLICE_S", 0.0)  # hand over at every check
    f, _ = follower(settings)
    tp = tp_of(f, item_stats.NAME)
    ran_between: list[int] = []

    async def request() -> None:  # stands for a request that arrives while the batch is applied
        await asyncio.sleep(0)
        ran_between.append(len(f.model.tables[item_stats.NAME]))

    task = asyncio.create_task(request())
    await f._apply(tp, records(tp, [(orjson.dumps(f"i{n}"), stats()) for n in range(64)]))
    await task
    assert 0 < ran_between[0] < 64  # it ran with part of the batch applied, not after all of it
    assert len(f.model.tables[item_stats.NAME]) == 64
