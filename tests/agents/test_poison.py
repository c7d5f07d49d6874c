"""Poison records on each input topic: every kind of garbage before a valid record becomes a
dead letter with its reason and is counted, and the agent goes on to apply the valid one."""
import time

import orjson

from tables.wire.dead_letters import reason_label
from tables import item_stats

FUTURE = 1e18  # read as milliseconds: 1e15 s, the year 31 million


def event(**fields):
    base = {"event_id": "e1", "user_id": "u1", "type": "view", "item_id": "i1", "ts": time.time()}
    base.update(fields)
    return orjson.dumps(base)


def change(**fields):
    base = {"item_id": "i1", "title": "Drill", "ts": time.time()}
    base.update(fields)
    return orjson.dumps(base)


def forward(**fields):
    base = {"type": "view", "ts": time.time(), "src": [0, 1]}
    base.update(fields)
    return orjson.dumps(base)



def reasons(sent, topic):
    return [dict(headers)["reason"].decode() for _, _, headers in sent.to(topic)]


def counted(w, source):
    """Dead letters counted from `source`, by reason label."""
    samples = w.metrics.dead_letters.collect()[0].samples
    return {s.labels["reason"]: s.value for s in samples
            if s.name.endswith("_total") and s.labels["source"] == source}


def by_label(reasons_seen):
    out = {}
    for reason in reasons_seen:
        out[reason_label(reason)] = out.get(reason_label(reason), 0) + 1
    return out


async def test_user_events_garbage_of_every_kind_is_dead_lettered_and_the_valid_event_applied(worker, put_all):
    w, sent = worker
    garbage = [
        (b"not json", "not valid JSON"),
        (None, "not valid JSON: the record has no value (a tombstone)"),
        (b"", "not valid JSON"),
        (b"[1, 2]", "event must be a JSON object, got list"),
        (b"42", "event must be a JSON object, got int"),
        (event(user_id=["u1"]), "'user_id' must be a non-empty string or integer"),
        (event(position="first"), "'position' must be an integer"),
        (event(ts=FUTURE), "'ts' must be at most"),
        (event(ts=time.time() + 3600), "'ts' must be at most"),
        (event(timestamp=1), "unknown key 'timestamp': an event's keys must be among event_id, user_id"),
    ]
    await put_all(w, "user-events", [(b"u1", v) for v, _ in garbage] + [(b"u1", event(event_id="ok"))])
    got = reasons(sent, w.dead_letters_topic)
    assert len(got) == len(garbage)
    for (_, want), reason in zip(garbage, got):
        assert want in reason, (want, reason)
    assert [v for _, v, _ in sent.to(w.dead_letters_topic)] == [v or b"" for v, _ in garbage]
    assert w.users["u1"]["counts"] == {"view": 1}  # the valid event after the garbage
    assert counted(w, "events") == by_label(got) and sum(by_label(got).values()) == len(garbage)


async def test_user_events_with_a_missing_or_non_utf8_key_are_sent_again_under_their_user(worker, put_all):
    w, sent = worker
    await put_all(w, "user-events", [(b"\xff\xfe", event()), (None, event(event_id="e2"))])
    assert "u1" not in w.users and sent.to(w.dead_letters_topic) == []
    assert [k for k, _, _ in sent.to(w.events_topic)] == [b"u1", b"u1"]


async def test_a_kafka_timestamp_in_the_future_does_not_become_the_event_time(worker, put_all):
    w, sent = worker
    body = orjson.loads(event())
    del body["ts"]
    await put_all(w, "user-events", [(b"u1", orjson.dumps(body))], timestamp=FUTURE / 1000)
    (fwd,) = sent.forwards(w.item_events_topic)
    assert fwd[2] <= time.time() + w.settings.limits.clock_skew_s


async def test_item_events_garbage_of_every_kind_is_dead_lettered_and_the_valid_forward_applied(worker, put_all):
    w, sent = worker
    garbage = [
        (b"i1", b"not json", "not valid JSON"),
        (b"i1", None, "the record has no value"),
        (b"i1", b"", "not valid JSON"),
        (b"\xff\xfe", forward(), "the key must be the item id"),
        (None, forward(), "the key must be the item id"),
        (b"", forward(), "the key must be the item id"),
        (b"i1", b"[1]", "item event must be a JSON object, got list"),
        (b"i1", b"3.5", "item event must be a JSON object, got float"),
        (b"i1", forward(type="like"), "'type' must be one of"),
        (b"i1", forward(ts="noon"), "'ts' must be a non-negative number"),
        (b"i1", forward(ts=None), "'ts' is required"),
        (b"i1", forward(ts=FUTURE), "'ts' must be at most"),
        (b"i1", forward(src=[0]), "'src' must be [partition, offset]"),
        (b"i1", forward(src=[0, -1]), "'src' must be [partition, offset]"),
        (b"i1", forward(src=["0", 1]), "'src' must be [partition, offset]"),
        (b"i1", forward(src=None), "'src' must be [partition, offset]"),
        (b"i1", forward(extra=1), "unknown key 'extra'"),
    ]
    await put_all(w, "item-events", [(k, v) for k, v, _ in garbage] + [(b"i1", forward())])
    got = reasons(sent, w.dead_letters_topic)
    assert len(got) == len(garbage)
    for (_, _, want), reason in zip(garbage, got):
        assert want in reason, (want, reason)
    assert w.items["i1"]["counts"] == {"view": 1} and w.items["i1"]["pop"] > 0.99
    assert counted(w, "item-events") == by_label(got)


async def test_item_stats_frozen_by_a_stored_future_ts_recover_on_the_next_valid_event(worker, put_all):
    w, _ = worker
    poisoned = item_stats.apply_event(item_stats.empty(), "purchase", 1e15, 0, 0, 3600.0, 600.0)
    w.items.data["i1"] = poisoned  # as accepted before event times were bounded
    await put_all(w, "item-events", [(b"i1", forward(type="view", src=[0, 1]))])
    stats = w.items["i1"]
    assert stats["ts"] <= time.time() + 1 and stats["pop"] == 1.0  # the view counts, the junk is gone
    assert stats["counts"] == {"purchase": 1, "view": 1}


async def test_catalog_garbage_of_every_kind_is_dead_lettered_and_the_valid_change_applied(worker, put_all):
    w, sent = worker
    garbage = [
        (b"not json", "not valid JSON"),
        (None, "the record has no value"),
        (b"", "not valid JSON"),
        (b'["i1"]', "catalog change must be a JSON object, got list"),
        (b"7", "catalog change must be a JSON object, got int"),
        (change(price="cheap"), "'price' must be a non-negative number"),
        (change(title=5), "'title' must be a non-empty string"),
        (change(ts=FUTURE), "'ts' must be at most"),
        (change(name="Drill"), "unknown key 'name': a catalog change's keys must be among op, item_id"),
    ]
    await put_all(w, "catalog-changes", [(b"i1", v) for v, _ in garbage] + [(b"i1", change())])
    got = reasons(sent, w.dead_letters_topic)
    assert len(got) == len(garbage)
    for (_, want), reason in zip(garbage, got):
        assert want in reason, (want, reason)
    assert w.catalog["i1"]["title"] == "Drill"
    assert counted(w, "catalog") == by_label(got)


async def test_catalog_changes_keyed_otherwise_are_sent_again_under_their_item(worker, put_all):
    w, sent = worker
    await put_all(w, "catalog-changes", [(b"\xff", change()), (None, change())])
    assert "i1" not in w.catalog and sent.to(w.dead_letters_topic) == []
    assert [k for k, _, _ in sent.to(w.catalog_topic)] == [b"i1", b"i1"]


async def test_pwned_upsert_with_a_far_future_ts_is_refused_and_the_correct_one_wins(worker, put_all):
    w, sent = worker
    now = time.time()
    await put_all(w, "catalog-changes", [
        (b"X1", change(item_id="X1", title="pwned", ts=99999999999)),
        (b"X1", change(item_id="X1", title="Cordless drill", ts=now)),
    ])
    assert w.catalog["X1"]["title"] == "Cordless drill"
    assert "'ts' must be at most" in reasons(sent, w.dead_letters_topic)[0]


async def test_a_stored_future_catalog_entry_does_not_freeze_the_item(worker, put_all):
    w, _ = worker
    w.catalog.data["X1"] = {"title": "pwned", "ts": 99999999999.0}  # accepted before the bound
    await put_all(w, "catalog-changes", [(b"X1", change(item_id="X1", title="Cordless drill"))])
    assert w.catalog["X1"]["title"] == "Cordless drill"
