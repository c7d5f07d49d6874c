"""Simulated search sessions: the click model, session drawing, the events, training queries only."""
from dataclasses import replace

import numpy as np
import orjson
import pytest

from tables.wire.records import parse_event
from app.search_sessions import (
    CartModel,
    PositionClickModel,
    SearchResults,
    SessionPlan,
    SessionSimulator,
    SessionSummary,
    session_shopper,
    training_queries,
)
from models.data.homedepot import SearchData, split_queries

DEV, CALIB = 0.2, 0.1


def catalog(n_queries: int = 60, items_per_query: int = 3) -> SearchData:
    """Query `widget q` judges items q*3.. with labels 3, 2, 1; titles say which query they fit."""
    data = SearchData()
    for q in range(n_queries):
        query = f"widget {q}"
        data.query_text[query] = f"Widget {q}"
        data.judgments[query] = {}
        for j in range(items_per_query):
            item = f"p{q * items_per_query + j}"
            data.items.append(item)
            data.titles.append(f"widget {q} tool model {j}")
            data.judgments[query][item] = 3.0 - j
    return data


def simulator(data: SearchData, **plan: object) -> SessionSimulator:
    return SessionSimulator(data, training_queries(data, DEV, CALIB), SessionPlan(**{"run": "t", **plan}))


def results_for(data: SearchData, query: str, request_id: str = "r1") -> SearchResults:
    """The judged items of the query, then unjudged ones: 10 results."""
    judged = list(data.judgments[query])
    others = [i for i in data.items if i not in judged][: 10 - len(judged)]
    return SearchResults(judged + others, request_id, "v1")


# ---- click model -------------------------------------------------------------------------


def test_examine_decreases_with_position():
    model = PositionClickModel()
    probs = [model.examine(p) for p in range(10)]
    assert probs[0] == 1.0
    assert all(a > b for a, b in zip(probs, probs[1:]))
    assert PositionClickModel(eta=2.0).examine(3) < model.examine(3)


def test_attract_follows_the_label():
    model = PositionClickModel()
    assert model.attract(None) == 0.05
    assert model.attract(1.0) == pytest.approx(0.1)
    assert model.attract(2.0) == pytest.approx(0.5)
    assert model.attract(3.0) == pytest.approx(0.9)
    for p in range(10):
        assert model.click_probability(p, 3.0) > model.click_probability(p, 1.0) > model.click_probability(p, None)


def test_noise_flips_every_decision_at_one_and_none_at_zero():
    relevances = [3.0, None, 2.0, 1.0, None, 3.0] * 5
    quiet = PositionClickModel(noise=0.0).clicks(relevances, np.random.default_rng(3))
    flipped = PositionClickModel(noise=1.0).clicks(relevances, np.random.default_rng(3))
    assert flipped == [not c for c in quiet]


def test_click_rate_matches_the_model():
    model = PositionClickModel(noise=0.1)
    rng = np.random.default_rng(0)
    rate = np.mean([model.clicks([3.0], rng)[0] for _ in range(20000)])
    assert rate == pytest.approx(0.9 * 0.9 + 0.1 * 0.1, abs=0.015)  # p kept, or 1-p flipped


def test_clicks_are_deterministic_by_seed():
    model, rels = PositionClickModel(), [3.0, 2.0, None] * 10
    assert model.clicks(rels, np.random.default_rng(5)) == model.clicks(rels, np.random.default_rng(5))


# ---- sessions ----------------------------------------------------------------------------


def test_training_queries_are_train_and_calib_only():
    data = catalog()
    splits = split_queries(data, (), DEV, CALIB)
    assert splits["dev"] and splits["calib"]  # the fixture exercises every split
    assert training_queries(data, DEV, CALIB) == sorted(splits["train"] + splits["calib"])
    held = splits["train"][0]
    assert held not in training_queries(data, DEV, CALIB, exclude=[held.upper()])


def test_sessions_use_training_queries_only():
    data = catalog()
    dev = set(split_queries(data, (), DEV, CALIB)["dev"])
    test = training_queries(data, DEV, CALIB)[:3]
    sim = SessionSimulator(data, training_queries(data, DEV, CALIB, exclude=test), SessionPlan(users=20))
    seen = {sim.session(n).query for n in range(500)}
    assert not seen & dev and not seen & set(test)
    assert len(seen) > 10
    assert {sim.session(n).user_id for n in range(500)} <= {f"hd-u{u}" for u in range(20)}


def test_sessions_are_reproducible_per_seed_and_number():
    data = catalog()
    a, b, c = simulator(data), simulator(data), simulator(data, seed=8)
    assert [a.session(n) for n in range(50)] == [b.session(n) for n in range(50)]
    assert [a.session(n) for n in range(50)] != [c.session(n) for n in range(50)]
    assert a.session(30) == simulator(data).session(30)  # independent of the sessions drawn before
    s = a.session(4)
    results = results_for(data, s.query)
    assert a.events(s, results, 100.0) == b.events(s, results, 100.0)


def test_events_are_search_then_impressions_then_clicks_carts_and_purchases():
    data = catalog()
    sim = simulator(data, seed=1)
    s = sim.session(0)
    results = results_for(data, s.query, "req-42")
    events = sim.events(s, results, 1000.0)
    search, impressions = events[0], events[1:11]
    clicks = [e for e in events[11:] if e.type == "click"]
    assert clicks  # the fixture session clicks (label 3 at position 0)
    assert [e.type for e in events[11:]] == sorted((e.type for e in events[11:]),
                                                   key=["click", "add_to_cart", "purchase"].index)
    assert [e.ts for e in events] == sorted(e.ts for e in events)
    assert (search.type, search.query, search.request_id, search.item_id) == ("search", s.text, "req-42", None)
    assert [e.type for e in impressions] == ["impression"] * 10
    assert [e.position for e in impressions] == list(range(10))
    assert [e.item_id for e in impressions] == results.item_ids
    assert {(e.request_id, e.query, e.user_id) for e in events} == {("req-42", s.text, s.user_id)}
    assert all(e.type == "click" for e in clicks)
    for click in clicks:
        assert results.item_ids[click.position] == click.item_id
        assert click.ts > search.ts
    assert len({e.event_id for e in events}) == len(events)
    for e in events:  # every event is what the intake accepts
        assert parse_event(orjson.loads(e.to_json()), now=0.0) == e


def test_only_the_first_k_results_are_shown():
    data = catalog()
    sim = simulator(data, k=4)
    s = sim.session(2)
    events = sim.events(s, results_for(data, s.query), 0.0)
    assert [e.position for e in events if e.type == "impression"] == [0, 1, 2, 3]
    assert all(e.position < 4 for e in events if e.type == "click")


def test_event_ids_are_unique_across_sessions_and_name_run_session_kind_position():
    data = catalog()
    sim = simulator(data, run="run7")
    assert sim.event_id(3, "click", 2) == "run7:hd:3:click:2"
    assert sim.event_id(3, "search") == "run7:hd:3:search"
    ids = [e.event_id for n in range(200) for e in sim.events(sim.session(n), results_for(data, sim.session(n).query), 0.0)]
    assert len(ids) == len(set(ids))


def test_relevant_results_are_clicked_more_than_unjudged_ones():
    data = catalog()
    sim = simulator(data)
    summary = SessionSummary(positions=10)
    for n in range(2000):
        s = sim.session(n)
        summary.add(sim.events(s, results_for(data, s.query), 0.0))
    ctr = [summary.ctr(p) for p in range(10)]
    assert ctr[0] > ctr[1] > ctr[2] > ctr[5]  # label 3, 2, 1, then unjudged
    summary_dict = summary.as_dict()
    assert summary_dict["sessions"] == 2000 and summary_dict["impressions"] == 20000
    assert len(summary_dict["ctr_by_position"]) == 10


def test_summary_of_nothing_has_no_ctr():
    assert SessionSummary().as_dict() == {"sessions": 0, "shoppers": 0, "impressions": 0, "clicks": 0,
                                          "carts": 0, "purchases": 0, "ctr_by_position": [None] * 5}


# ---- carts, purchases, the catalog, returning shoppers ------------------------------------


def all_events(sim: SessionSimulator, data: SearchData, sessions: int, results=results_for) -> list:
    """Events of sessions 0..sessions-1, each session's response with a request id of its own."""
    out = []
    for n in range(sessions):
        s = sim.session(n)
        out += sim.events(s, replace(results(data, s.query), request_id=f"r{n}"), 100.0 * n)
    return out


def test_a_cart_follows_a_click_on_that_product_and_a_purchase_follows_its_cart():
    data = catalog()
    sim = simulator(data)
    events = all_events(sim, data, 1500)
    by_kind = {kind: [e for e in events if e.type == kind] for kind in ("click", "add_to_cart", "purchase")}
    assert len(by_kind["click"]) > len(by_kind["add_to_cart"]) > len(by_kind["purchase"]) > 20
    first = {}  # (request, item, type) -> time of that event
    for e in events:
        first.setdefault((e.request_id, e.item_id, e.type), e.ts)
    for kind, before in (("add_to_cart", "click"), ("purchase", "add_to_cart")):
        for e in by_kind[kind]:
            assert (e.request_id, e.item_id, before) in first, e  # never without the step before it
            assert first[(e.request_id, e.item_id, before)] < e.ts
            assert e.user_id == next(x.user_id for x in by_kind[before] if x.request_id == e.request_id)


def test_no_cart_and_no_purchase_without_clicks():
    data = catalog()
    never = PositionClickModel(noise=0.0, unjudged=0.0, eta=50.0)  # only position 0 can be clicked
    sim = SessionSimulator(data, training_queries(data, DEV, CALIB), SessionPlan(run="t"), never,
                           CartModel(cart_unjudged=1.0, cart_low=1.0, cart_high=1.0, purchase=1.0))

    def unjudged_only(d, q):  # nothing judged is shown, and unjudged results are never clicked
        return SearchResults([i for i in d.items if i not in d.judgments[q]][:10], "r")

    events = all_events(sim, data, 300, results=unjudged_only)
    assert {e.type for e in events} == {"search", "impression"}


def test_carts_favour_relevant_products():
    model = CartModel()
    assert model.cart_probability(3.0) > model.cart_probability(2.0) > model.cart_probability(1.0) > 0
    assert model.cart_probability(None) < model.cart_probability(1.0)
    rng = np.random.default_rng(0)
    decisions = [model.carts([3.0], rng)[0] for _ in range(20000)]
    assert np.mean([added for added, _ in decisions]) == pytest.approx(model.cart_high, abs=0.015)
    assert np.mean([bought for _, bought in decisions]) == pytest.approx(model.cart_high * model.purchase, abs=0.015)
    assert all(added for added, bought in decisions if bought)


def test_every_event_names_a_catalog_product():
    data = catalog()
    sim = simulator(data)

    def with_strangers(d, q):  # a foreign id first and one in the middle: never shown, never clicked
        judged = results_for(d, q)
        return SearchResults(["B00FOREIGN"] + judged.item_ids[:3] + ["gone-1"] + judged.item_ids[3:], "r")

    events = all_events(sim, data, 300, results=with_strangers)
    named = {e.item_id for e in events if e.item_id is not None}
    assert named and named <= set(data.items)
    assert [e.position for e in events[1:11]] == list(range(10))  # the shown list is catalog-only and full


def test_shoppers_come_back_and_the_same_seed_gives_the_same_shop():
    data = catalog()
    sim = simulator(data, users=50)
    events = all_events(sim, data, 500)
    sessions_per_user = {}
    for e in events:
        if e.type == "search":
            sessions_per_user[e.user_id] = sessions_per_user.get(e.user_id, 0) + 1
    assert len(sessions_per_user) == 50 and min(sessions_per_user.values()) >= 2
    assert all_events(simulator(data, users=50), data, 500) == events
    assert [session_shopper(sim.plan, n) for n in range(500)] == [sim.session(n).user_id for n in range(500)]
    assert all_events(simulator(data, users=50, seed=8), data, 500) != events
    summary = SessionSummary()
    for n in range(500):
        summary.add([e for e in events if e.event_id.startswith(f"t:hd:{n}:")])
    counts = summary.as_dict()
    assert counts["shoppers"] == 50
    assert counts["carts"] == sum(e.type == "add_to_cart" for e in events) > counts["purchases"] > 0
