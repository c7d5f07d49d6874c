"""Search quality over a query set: mean nDCG@10 (2^g - 1 gains) and Recall@100 (relevance >= 2.5)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from models.data.homedepot import SearchData
from models.metrics import ndcg_at_k, recall_at_k


def search_metrics(data: SearchData, queries: Sequence[str], ranked: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """Means over normalised `queries` of nDCG@10 and Recall@100 of `ranked[query]` (item ids, best first)."""
    if not queries:
        return {"nDCG@10": 0.0, "Recall@100": 0.0}
    ndcg = sum(ndcg_at_k(ranked.get(q, []), data.gains(q), 10) for q in queries)
    recall = sum(recall_at_k(list(ranked.get(q, [])), data.relevant(q), 100) for q in queries)
    return {"nDCG@10": ndcg / len(queries), "Recall@100": recall / len(queries)}
