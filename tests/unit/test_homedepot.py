"""Home Depot loading, the query split, test-query matching."""
import gzip

import pytest

from models.data.homedepot import (
    eligible_test_queries,
    load_homedepot,
    load_test_queries,
    normalize_query,
    split_of,
    split_queries,
)
from models.errors import DataError

CSV = """id,product_uid,product_title,search_term,relevance
1,100001,Simpson Strong-Tie 12-Gauge Angle,angle bracket,3
2,100001,Simpson Strong-Tie 12-Gauge Angle,l bracket,2.5
3,100002,BEHR Premium Textured DeckOver,deck over,3
4,100003,Delta Vero Shower Faucet,Angle  Bracket ,1.67
5,100004,Hampton Bay Fan,ceiling fan,2.33
"""


@pytest.fixture(params=["plain", "gz"])
def csv_path(tmp_path, request):
    if request.param == "gz":
        path = tmp_path / "train.csv.gz"
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(CSV)
    else:
        path = tmp_path / "train.csv"
        path.write_text(CSV)
    return path


def test_load_builds_catalog_and_judgments(csv_path):
    data = load_homedepot(csv_path)
    assert data.items == ["100001", "100002", "100003", "100004"]
    assert data.titles[0] == "Simpson Strong-Tie 12-Gauge Angle"
    # "Angle  Bracket " is the same query as "angle bracket"
    assert data.judgments["angle bracket"] == {"100001": 3.0, "100003": 1.67}
    assert data.gains("angle bracket") == pytest.approx({"100001": 2.0, "100003": 0.67})
    assert data.relevant("angle bracket") == {"100001"}
    assert data.relevant("ceiling fan") == set()


def test_test_queries_match_case_and_space_insensitively(csv_path, tmp_path):
    data = load_homedepot(csv_path)
    path = tmp_path / "q.txt"
    path.write_text("  ANGLE bracket\n\nL Bracket\nceiling fan\nunknown query\nangle   bracket\n")
    queries = load_test_queries(path)
    assert queries == ["angle bracket", "l bracket", "ceiling fan", "unknown query"]
    # ceiling fan has no product >= 2.5, unknown is not judged
    assert eligible_test_queries(data, queries) == ["angle bracket", "l bracket"]


def test_split_is_deterministic_disjoint_and_keeps_test_queries_out(csv_path):
    data = load_homedepot(csv_path)
    assert normalize_query("  Deck  OVER ") == "deck over"
    assert split_of("deck over") == split_of("deck over")
    splits = split_queries(data, exclude=["Angle Bracket", "DECK OVER"], dev_fraction=0.0, calib_fraction=0.0)
    assert set(splits["dev"]) == {"angle bracket", "deck over"}
    assert set(splits["train"]) == {"l bracket", "ceiling fan"}
    every = split_queries(data)
    assert sorted(sum(every.values(), [])) == sorted(data.judgments)
    assert not set(every["train"]) & set(every["dev"]) and not set(every["calib"]) & set(every["dev"])


def test_split_fractions_hold_on_many_queries():
    parts = [split_of(f"query {i}") for i in range(5000)]
    assert 0.17 < parts.count("dev") / 5000 < 0.23
    assert 0.08 < parts.count("calib") / 5000 < 0.12


def test_bad_files_raise_data_error(tmp_path):
    with pytest.raises(DataError, match="no such"):
        load_homedepot(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("id,product_uid,search_term\n1,2,x\n")
    with pytest.raises(DataError, match="missing columns"):
        load_homedepot(bad)
