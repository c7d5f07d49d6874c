import time

import orjson

from app.table_sweep import TableSweep
from tables import user_profiles


def raw(**fields):
    base = {"event_id": "e1", "user_id": "u1", "type": "view", "item_id": "i1", "ts": 100.0}
    base.update(fields)
    return orjson.dumps(base)



async def test_valid_events_update_the_profile_and_are_forwarded_by_item(worker, put_all):
    w, sent = worker
    await put_all(w, "user-events", [(b"u1", raw(event_id="a", item_id="i1")),
                          (b"u1", raw(event_id="b", item_id="i2", type="purchase"))], partition=0)
    profile = w.users["u1"]
    assert profile["counts"] == {"view": 1, "purchase": 1}
    assert profile["recent"] == ["i1", "i2"]
    forwarded = sent.forwards(w.item_events_topic)
    assert [f[0] for f in forwarded] == ["i1", "i2"] and forwarded[1][1] == "purchase"
    assert [f[3:] for f in forwarded] == [[0, 0], [0, 1]]  # the source positions
    assert w.metrics.events_processed.labels(type="view")._value.get() == 1


async def test_malformed_records_become_dead_letters_with_reason_and_original_bytes(worker, put_all):
    w, sent = worker
    bad = [b"not json", raw(type="like"), raw(user_id=None), b'{"event_id": "x"', raw(query="q" * 70000)]
    await put_all(w, "user-events", [(b"u1", v) for v in bad] + [(b"u1", raw(event_id="ok"))], partition=0)
    letters = sent.to(w.dead_letters_topic)
    assert [value for _, value, _ in letters] == bad
    reasons = [dict(h)["reason"].decode() for _, _, h in letters]
    assert "not valid JSON" in reasons[0] and "'type' must be one of" in reasons[1]
    assert "'user_id' is required" in reasons[2] and "over the limit" in reasons[4]
    assert dict(letters[0][2])["source_offset"] == b"0"
    # the worker went on: the valid event after the garbage was applied
    assert w.users["u1"]["counts"] == {"view": 1}


async def test_duplicate_event_id_counts_once_but_redelivery_is_processed_by_offset(worker, put_all):
    w, sent = worker
    await put_all(w, "user-events", [(b"u1", raw(event_id="same")), (b"u1", raw(event_id="same")),
                          (b"u1", raw(event_id="other"))], partition=0)
    assert w.users["u1"]["counts"] == {"view": 2}
    assert w.metrics.events_duplicate._value.get() == 1
    assert len(sent.forwards(w.item_events_topic)) == 2


async def test_redelivered_offsets_do_not_count_twice(worker, put_all):
    w, _ = worker
    # A profile already holding offset 5 of partition 0, as after a crash before commit.
    profile = user_profiles.empty()
    profile["src"] = {"0": 5}
    w.users.data["u1"] = profile  # straight into the store, as recovery from the changelog would
    await put_all(w, "user-events", [(b"u1", raw(event_id=f"r{i}")) for i in range(8)], partition=0)  # offsets 0..7
    assert w.users["u1"]["counts"] == {"view": 2}  # offsets 6 and 7 only
    assert w.metrics.events_redelivered.labels(table="user_profiles")._value.get() == 6


async def test_wrongly_keyed_event_is_sent_again_under_its_user(worker, put_all):
    w, sent = worker
    await put_all(w, "user-events", [(b"someone-else", raw())], partition=0)
    assert "u1" not in w.users
    assert [k for k, _, _ in sent.to(w.events_topic)] == [b"u1"]


async def test_sequences_and_impressions_become_training_samples(worker, put_all):
    w, sent = worker
    await put_all(w, "user-events", [
        (b"u1", raw(event_id="a", item_id="i1", ts=100.0)),
        (b"u1", raw(event_id="b", item_id="i1", type="click", ts=101.0)),  # same item again: no pair
        (b"u1", raw(event_id="c", item_id="i2", ts=102.0)),
        (b"u1", raw(event_id="d", item_id="i7", type="impression", position=0, request_id="r1", ts=103.0)),
        (b"u1", raw(event_id="e", item_id="i8", type="impression", position=1, request_id="r1", ts=103.0)),
        (b"u1", raw(event_id="f", item_id="i8", type="click", request_id="r1", ts=104.0)),
        # far later: the unclicked impression of i7 times out as a negative
        (b"u1", raw(event_id="g", item_id="i9", ts=104.0 + w.settings.online.impression_window_s + 1)),
    ], partition=0)
    samples = [orjson.loads(v) for _, v, _ in sent.to(w.samples_topic)]
    nexts = [(s["history"], s["target"]) for s in samples if s["kind"] == "next"]
    assert nexts == [(["i1", "i1"], "i2"), (["i1", "i1", "i2"], "i8"), (["i1", "i1", "i2", "i8"], "i9")]
    clicks = [(s["item"], s["position"], s["label"], s["request_id"]) for s in samples if s["kind"] == "click"]
    assert clicks == [("i8", 1, 1, "r1"), ("i7", 0, 0, "r1")]
    assert all(s["src"][0] == 0 for s in samples)
    assert w.users["u1"]["pending"] == []


async def test_an_event_id_is_refused_for_the_dedup_window_then_its_row_is_dropped(worker, put_all):
    w, sent = worker
    window = w.settings.worker.dedup_window_s
    await put_all(w, "user-events", [(b"u1", raw(event_id=e)) for e in ("a", "b", "c")], partition=0)
    await put_all(w, "user-events", [(b"u1", raw(event_id="b"))], partition=0)  # reused within the window
    assert w.metrics.events_duplicate._value.get() == 1
    assert set(w.seen.data.keys()) == {"a", "b", "c"}

    # The window has passed for a, b and c. A new sweep: the worker's rests, its first pass
    # having ended at once on a small table.
    w.sweeps["seen_events"] = TableSweep(window, w.metrics.rows_expired.labels(table="seen_events"),
                                         clock=lambda: time.time() + window + 60)
    await put_all(w, "user-events", [(b"u1", raw(event_id="d"))], partition=0)
    assert set(w.seen.data.keys()) == {"d"}
    changelog = sent.by_topic[w.seen.changelog_topic.get_topic_name()]
    assert sorted(orjson.loads(k) for k, v, _ in changelog if v is None) == ["a", "b", "c"]  # tombstones
    assert w.metrics.rows_expired.labels(table="seen_events")._value.get() == 3

    await put_all(w, "user-events", [(b"u1", raw(event_id="a"))], partition=0)  # reused after it: taken
    assert w.metrics.events_duplicate._value.get() == 1 and set(w.seen.data.keys()) == {"a", "d"}
