"""Home Depot product search data: catalog, graded judgments, query splits, test-query files.

Protocol (shared/data/README.md): the catalog is every distinct product_uid of the file; the
gain of a judged product is `relevance - 1`; a test query needs one product with relevance
>= 2.5; queries are matched case-insensitively after trimming (we also collapse inner runs of
spaces). Splits hash the normalised query, so a query lands in the same split on every run
and on every machine, whatever else the file holds.
"""
from __future__ import annotations

import csv
import gzip
import hashlib
import io
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from models.errors import DataError

COLUMNS = ("id", "product_uid", "product_title", "search_term", "relevance")
RELEVANT = 2.5  # relevance at or above which a product counts for Recall and test eligibility


def normalize_query(text: str) -> str:
    """The key a query is matched by: trimmed, lowercased, inner whitespace collapsed."""
    return " ".join(text.split()).lower()


@dataclass
class SearchData:
    """A loaded judgments file.

    items / titles: the catalog, in order of first appearance. judgments: normalised query ->
    {product_uid: mean relevance (1..3)}. query_text: normalised query -> its first raw spelling.
    """

    items: list[str] = field(default_factory=list)
    titles: list[str] = field(default_factory=list)
    judgments: dict[str, dict[str, float]] = field(default_factory=dict)
    query_text: dict[str, str] = field(default_factory=dict)

    def gains(self, query: str) -> dict[str, float]:
        """{product_uid: relevance - 1} of a normalised query (0..2)."""
        return {item: rel - 1.0 for item, rel in self.judgments.get(query, {}).items()}

    def relevant(self, query: str) -> set[str]:
        """Products with relevance >= 2.5 for a normalised query."""
        return {item for item, rel in self.judgments.get(query, {}).items() if rel >= RELEVANT}

    def catalog_hash(self) -> str:
        """sha256 of the (product_uid, title) pairs in catalog order."""
        digest = hashlib.sha256()
        for item, title in zip(self.items, self.titles):
            digest.update(f"{item}\t{title}\n".encode())
        return digest.hexdigest()


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def load_homedepot(path: Path | str) -> SearchData:
    """Read `id, product_uid, product_title, search_term, relevance` (plain or .gz CSV)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such judgments file: {path}")
    grades: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    data = SearchData()
    seen: dict[str, str] = {}
    try:
        with _open_text(path) as handle:
            reader = csv.DictReader(handle)
            missing = set(COLUMNS[1:]) - set(reader.fieldnames or ())
            if missing:
                raise DataError(f"{path}: missing columns {sorted(missing)} (need {', '.join(COLUMNS)})")
            for line, row in enumerate(reader, start=2):
                item, title, query = row["product_uid"].strip(), row["product_title"], row["search_term"]
                try:
                    rel = float(row["relevance"])
                except (TypeError, ValueError) as exc:
                    raise DataError(f"{path}:{line}: relevance {row['relevance']!r} is not a number") from exc
                if item not in seen:
                    seen[item] = title
                    data.items.append(item)
                    data.titles.append(title)
                key = normalize_query(query or "")
                if not key:
                    continue
                data.query_text.setdefault(key, " ".join(query.split()))
                grades[key][item].append(rel)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    data.judgments = {q: {i: sum(r) / len(r) for i, r in by_item.items()} for q, by_item in grades.items()}
    return data


def split_of(query: str, dev_fraction: float = 0.2, calib_fraction: float = 0.1) -> str:
    """'dev', 'calib' or 'train' for a normalised query, from a hash of its text.

    dev is held out for evaluation; calib (part of training) fits the ranker on scores the
    encoder adapter was not trained on; train fits the encoder adapter.
    """
    h = int.from_bytes(hashlib.sha256(query.encode()).digest()[:8], "big") / 2**64
    if h < dev_fraction:
        return "dev"
    return "calib" if h < dev_fraction + calib_fraction else "train"


def split_queries(
    data: SearchData, exclude: Iterable[str] = (), dev_fraction: float = 0.2, calib_fraction: float = 0.1
) -> dict[str, list[str]]:
    """{'train': [...], 'calib': [...], 'dev': [...]} of normalised queries, sorted.

    Queries in `exclude` (test queries, normalised here) go to no training split; they are
    added to dev if judged, so they never reach a model.
    """
    banned = {normalize_query(q) for q in exclude}
    out: dict[str, list[str]] = {"train": [], "calib": [], "dev": []}
    for query in sorted(data.judgments):
        part = "dev" if query in banned else split_of(query, dev_fraction, calib_fraction)
        out[part].append(query)
    return out


def eligible_test_queries(data: SearchData, queries: Iterable[str]) -> list[str]:
    """Normalised, de-duplicated queries that are judged and have a product with relevance >= 2.5."""
    out = []
    for query in dict.fromkeys(normalize_query(q) for q in queries):
        if query and data.relevant(query):
            out.append(query)
    return out


def load_test_queries(path: Path | str) -> list[str]:
    """Normalised queries of a file, one a line (blank lines skipped), first occurrence order."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such test-queries file: {path}")
    with open(path, encoding="utf-8") as handle:
        return list(dict.fromkeys(q for q in (normalize_query(line) for line in handle) if q))


def write_queries(path: Path | str, queries: Iterable[str]) -> Path:
    """Write queries one a line (UTF-8); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{q}\n" for q in queries), encoding="utf-8")
    return path


def queries_hash(queries: Iterable[str]) -> str:
    """sha256 of the sorted normalised queries, one a line."""
    return hashlib.sha256("".join(f"{q}\n" for q in sorted(set(queries))).encode()).hexdigest()
