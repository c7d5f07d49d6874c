"""Sponsored products in the worker: the campaigns table, and clicks charged once from their ad tokens."""
from __future__ import annotations

import time

import orjson

from agents import user_events
from app.table_sweep import TableSweep
from models.ads.campaigns import Campaign
from tables import charged_tokens
from tables.wire.ad_tokens import MAX_AGE_S, AdCharge, sign_token, token_id
from tables.wire.updates import signing_key


def click(token: str | None, event_id: str = "e1", item_id: str = "i1", ts: float | None = None) -> bytes:
    body = {"event_id": event_id, "user_id": "u1", "type": "click", "item_id": item_id, "ts": ts or time.time()}
    if token is not None:
        body["ad_token"] = token
    return orjson.dumps(body)


def token(w, campaign_id: str = "c1", item_id: str = "i1", price: float = 0.25, budget: float = 10.0,
          age_s: float = 0.0) -> str:
    """A token for one impression (`age_s` seconds ago: impressions of one ad differ by when)."""
    return sign_token(signing_key(w.settings), AdCharge(campaign_id, item_id, price, time.time() - age_s, budget))


async def forward_all(w, sent, put_all, times: int = 1) -> None:
    """The item-events records user-events sent, into the item agent (`times` over: redeliveries)."""
    records = sent.to(w.item_events_topic)
    home = w.partition_of(b"i1", w.settings.topics.partitions)
    for _ in range(times):
        await put_all(w, "item-events", [(key, value) for key, value, _ in records], partition=home)


async def test_campaigns_are_kept_and_bad_ones_are_dead_letters(worker, put_all):
    w, sent = worker
    c1 = Campaign("c1", "i1", bid_per_click=0.5, daily_budget=3.0)
    records = [
        (b"c1", c1.to_json()),
        (b"c1", Campaign("c1", "i1", bid_per_click=0.8, daily_budget=3.0).to_json()),  # a new bid
        (b"c1", Campaign("c1", "i2", bid_per_click=0.8, daily_budget=3.0).to_json()),  # another item
        (b"c2", orjson.dumps({"campaign_id": "c2", "item_id": "i2", "bid_per_click": 0, "daily_budget": 1})),
        (b"c2", b"not json"),
        (b"other", Campaign("c3", "i3", 0.1, 1.0).to_json()),  # keyed otherwise: sent round again
    ]
    await put_all(w, "campaign-changes", records)
    assert w.campaigns["c1"] == {"campaign_id": "c1", "item_id": "i1", "bid_per_click": 0.8, "daily_budget": 3.0}
    assert "c2" not in w.campaigns and "c3" not in w.campaigns
    reasons = [dict(h)["reason"].decode() for _, _, h in sent.to(w.dead_letters_topic)]
    assert len(reasons) == 3
    assert "its item cannot change" in reasons[0]
    assert "'bid_per_click' must be a finite number above 0" in reasons[1] and "not valid JSON" in reasons[2]
    assert [k for k, _, _ in sent.to(w.campaigns_topic)] == [b"c3"]
    assert w.metrics.campaign_changes._value.get() == 2


async def test_a_click_with_a_good_token_is_charged_once_through_redeliveries(worker, put_all):
    w, sent = worker
    first, second = token(w, price=0.25, age_s=2), token(w, price=0.25, age_s=1)  # two impressions
    events = [(b"u1", click(first, "e1")), (b"u1", click(None, "e2")), (b"u1", click(second, "e3"))]
    await put_all(w, "user-events", events, partition=0)
    await put_all(w, "user-events", events, partition=0)  # the same positions again, as after a crash
    charges = [f[5] if len(f) == 6 else None for f in sent.forwards(w.item_events_topic)]
    ids = [token_id(first), token_id(second)]
    assert charges == [["c1", 0.25, 10.0, ids[0]], None, ["c1", 0.25, 10.0, ids[1]]] * 2  # forwarded again, charge and all
    await forward_all(w, sent, put_all, times=2)  # and the item agent gets them twice over
    row = w.ad_spend["c1"]
    assert row["spend"] == 0.5 and row["clicks"] == 2 and row["refused"] == 0 and row["src"] == {"0": 2}
    assert w.items["i1"]["counts"] == {"click": 3}
    assert w.metrics.ad_clicks.labels(campaign="c1")._value.get() == 2
    assert w.metrics.ad_spend.labels(campaign="c1")._value.get() == 0.5


async def test_a_forged_token_is_not_charged_but_the_click_counts(worker, put_all):
    w, sent = worker
    good = token(w, price=0.25)
    forged = good.replace(".250000.", ".10000.")  # the shop names its own price
    other_item = token(w, item_id="i9")
    await put_all(w, "user-events", [(b"u1", click(forged, "e1")), (b"u1", click(other_item, "e2")),
                                     (b"u1", click("v1.nonsense", "e3"))], partition=0)
    assert all(len(f) == 5 for f in sent.forwards(w.item_events_topic))
    await forward_all(w, sent, put_all)
    assert "c1" not in w.ad_spend
    assert w.users["u1"]["counts"] == {"click": 3} and w.items["i1"]["counts"] == {"click": 3}
    refused = w.metrics.ad_charges_refused
    assert refused.labels(reason="bad_signature")._value.get() == 1
    assert refused.labels(reason="other_item")._value.get() == 1
    assert not sent.to(w.dead_letters_topic)


async def test_a_token_is_charged_once_however_many_click_events_carry_it(worker, put_all):
    """A replayed token (a second click on one ad, a bot sending a page's token again, from any
    shopper) counts as a click but is not charged again, through redeliveries too."""
    w, sent = worker
    t, other = token(w, price=0.25, age_s=1), token(w, price=0.25)
    replays = [(b"u1", click(t, f"e{i}")) for i in range(4)] + [(b"u1", click(other, "e9"))]
    await put_all(w, "user-events", replays, partition=0)
    await put_all(w, "user-events", [(b"u2", orjson.dumps({**orjson.loads(click(t, "e5")), "user_id": "u2"}))],
                  partition=1)  # another shopper, another events partition
    await forward_all(w, sent, put_all, times=2)  # every forward twice: a redelivery after a crash
    row = w.ad_spend["c1"]
    assert row["spend"] == 0.5 and row["clicks"] == 2 and row["refused"] == 0
    assert w.charged_tokens[token_id(t)][:2] == [0, 0] and w.charged_tokens[token_id(other)][:2] == [0, 4]
    assert abs(w.charged_tokens[token_id(t)][2] - time.time()) < 60  # charged now, by the worker's clock
    assert w.items["i1"]["counts"] == {"click": 6}  # every click counts as one
    assert w.metrics.ad_charges_refused.labels(reason="replayed")._value.get() == 2 * 4  # each delivery refused
    assert w.metrics.ad_clicks.labels(campaign="c1")._value.get() == 2


async def test_clicks_past_the_budget_are_refused_after_the_one_that_crosses_it(worker, put_all):
    w, sent = worker
    await put_all(w, "user-events", [(b"u1", click(token(w, price=0.4, budget=1.0, age_s=i), f"e{i}"))
                                     for i in range(5)], partition=0)
    await forward_all(w, sent, put_all)
    row = w.ad_spend["c1"]
    assert row["spend"] == 1.2 and row["clicks"] == 3 and row["refused"] == 2
    assert w.metrics.ad_charges_refused.labels(reason="budget")._value.get() == 2
    assert w.metrics.ad_overspend_clicks.labels(campaign="c1")._value.get() == 1


async def test_an_ad_token_on_a_view_is_a_dead_letter(worker, put_all):
    w, sent = worker
    view = orjson.loads(click(token(w)))
    view["type"] = "view"
    await put_all(w, "user-events", [(b"u1", orjson.dumps(view))], partition=0)
    (_, _, headers), = sent.to(w.dead_letters_topic)
    assert "accepted on clicks only" in dict(headers)["reason"].decode()


async def test_a_charged_tokens_row_outlives_its_token_then_is_dropped(worker, put_all, monkeypatch):
    """Kept while the token can still be charged (MAX_AGE_S, and the clock skew), dropped after
    KEEP_S; by then user-events refuses the token as expired, so dropping it charges nothing twice."""
    w, sent = worker
    start = time.time()
    expired = w.metrics.rows_expired.labels(table=charged_tokens.NAME)

    def fresh(at: float) -> str:
        return sign_token(signing_key(w.settings), AdCharge("c1", "i1", 0.25, at, 10.0))

    async def clicks(tokens: dict[str, str], at: float) -> None:
        monkeypatch.setattr(user_events.time, "time", lambda: at)
        # a new sweep at `at` each time: a whole pass on this small table, with no rest before it
        w.sweeps[charged_tokens.NAME] = TableSweep(charged_tokens.KEEP_S, expired, clock=lambda: at)
        done = len(sent.to(w.item_events_topic))
        await put_all(w, "user-events", [(b"u1", click(tok, event_id, ts=at)) for event_id, tok in tokens.items()],
                      partition=0)
        home = w.partition_of(b"i1", w.settings.topics.partitions)
        await put_all(w, "item-events", [(k, v) for k, v, _ in sent.to(w.item_events_topic)[done:]], partition=home)

    first = fresh(start)
    await clicks({"e1": first}, start)
    last_chance = start + MAX_AGE_S + 300  # the token's age as user-events checks it, clock skew included
    await clicks({"e2": fresh(last_chance)}, last_chance)  # a charge in the same partition: its sweep runs
    assert token_id(first) in w.charged_tokens
    after = start + charged_tokens.KEEP_S + 60
    await clicks({"e3": first, "e4": fresh(after)}, after)  # a replay of the first token once its row may go
    assert token_id(first) not in w.charged_tokens
    assert w.metrics.rows_expired.labels(table=charged_tokens.NAME)._value.get() == 1
    assert w.metrics.ad_charges_refused.labels(reason="expired")._value.get() == 1  # the replay: not charged
