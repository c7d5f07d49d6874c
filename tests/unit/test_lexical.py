"""BM25 index: ranking, live add/remove/upsert, tokenisation."""
import numpy as np

from models.lexical import BM25Index, tokenize

TITLES = {
    "a": "Simpson Strong-Tie 12-Gauge Angle",
    "b": "DEWALT 20-Volt Cordless Drill with Batteries",
    "c": "Hampton Bay 52 in. Ceiling Fan with Light",
    "d": "Angle Bracket Zinc 4 Pack",
}


def build() -> BM25Index:
    return BM25Index.build(list(TITLES), list(TITLES.values()))


def test_tokenize_folds_case_units_and_plurals():
    assert tokenize("52 in. Ceiling Fans") == tokenize("52 inches ceiling fan") == ["52", "in", "ceiling", "fan"]
    assert tokenize("Batteries, 2-Pack") == ["battery", "2", "pack"]
    assert tokenize("20V") == ["20", "v"]


def test_search_ranks_matching_items_first():
    index = build()
    hits = index.search("angle bracket", 10)
    assert [i for i, _ in hits][:2] == ["d", "a"]
    assert all(s > 0 for _, s in hits) and {i for i, _ in hits} == {"a", "d"}
    assert index.search("cordless drill battery", 1)[0][0] == "b"
    assert index.search("nothing matches", 5) == []


def test_add_remove_and_upsert_are_live():
    index = build()
    index.add("e", "Ryobi cordless drill kit")
    assert {i for i, _ in index.search("cordless drill", 10)} == {"b", "e"}
    assert index.remove("b") and not index.remove("b")
    assert [i for i, _ in index.search("cordless drill", 10)] == ["e"]
    assert "b" not in index and len(index) == 4
    index.add("e", "Garden hose 50 ft")  # upsert replaces the old text
    assert index.search("cordless", 10) == []
    assert index.search("hose", 10)[0][0] == "e"
    index.add("f", "Cordless drill")  # reuses the freed slot
    assert index.search("drill", 10)[0][0] == "f"


def test_idf_follows_the_live_catalog():
    index = build()
    before = dict(index.search("angle", 10))["a"]
    index.remove("d")
    after = dict(index.search("angle", 10))["a"]
    assert after > before  # "angle" got rarer


def test_score_items_gives_bm25_and_coverage():
    index = build()
    bm25, coverage = index.score_items("angle bracket", ["d", "a", "b", "zzz"])
    assert bm25[0] > bm25[1] > 0 and bm25[2] == 0 and bm25[3] == 0
    np.testing.assert_allclose(coverage, [1.0, 0.5, 0.0, 0.0])


def test_coverage_by_slot_matches_score_items():
    index = build()
    coverage = index.coverage("angle bracket zzz")
    _, by_item = index.score_items("angle bracket zzz", list(TITLES))
    np.testing.assert_allclose(coverage[index.slots(list(TITLES))], by_item)


def test_cached_term_weights_follow_the_mean_length():
    index = build()
    index.scores("angle drill")  # caches the weights of both terms at this mean length
    index.add("e", "a very long title about nothing in particular at all with many words")
    fresh = BM25Index.build([*TITLES, "e"], [*TITLES.values(), "a very long title about nothing in particular at all with many words"])
    np.testing.assert_allclose(index.scores("angle drill")[index.slots(list(TITLES))],
                               fresh.scores("angle drill")[fresh.slots(list(TITLES))], rtol=1e-6)


def test_warm_precomputes_every_term_and_redoes_them_after_a_change():
    index = build()
    assert not index._compiled
    while not index.warm(budget_s=1.0):
        pass
    assert set(index._compiled) == set(index._postings)
    assert index.warm(budget_s=1.0)  # nothing left: a cheap no-op
    index.add("e", "cordless angle grinder with a long name")
    assert not index.warm(budget_s=0.0)  # the new terms and the new mean length are pending
    while not index.warm(budget_s=1.0):
        pass
    fresh = BM25Index.build([*TITLES, "e"], [*TITLES.values(), "cordless angle grinder with a long name"])
    for query in ("angle drill", "cordless grinder", "bracket"):
        np.testing.assert_allclose(index.scores(query)[index.slots([*TITLES, "e"])],
                                   fresh.scores(query)[fresh.slots([*TITLES, "e"])], rtol=1e-6)


def test_query_terms_no_item_has_leave_nothing_behind():
    """Hostile queries of unique junk words must not grow the per-term cache."""
    index = build()
    baseline = index.search("cordless drill", 5)
    for n in range(2000):
        junk = "".join(chr(ord("j") + int(d)) for d in str(n))  # letters: digits would match "12" or "20"
        assert index.search(f"zz{junk} q{junk}q cordless drill", 5) == baseline
        assert index.coverage(f"zz{junk} drill").max() == 0.5
    assert set(index._compiled) == {"cordless", "drill"}
    assert index.warm(1.0) and set(index._compiled) == set(index._postings)
