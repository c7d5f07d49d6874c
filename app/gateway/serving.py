"""The gateway's serving models, kept current from the same changelogs as its read model.

- recommendations: online item-to-item transitions learned from each profile change, with
  trending items for users the stream has not seen;
- search: a BM25 index over the live catalog (upserts re-index, deletes remove).
Both change under the single-threaded event loop between requests, so a request always
ranks against one whole state; `version` names it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from app.gateway.read_model import ReadModel
from models.lexical import BM25Index
from models.rec.online_transitions import OnlineTransitions
from tables import catalog, user_profiles


@dataclass(frozen=True)
class Filters:
    """Business filters; a filter on a catalog field passes only items the catalog knows."""

    in_stock: bool = False
    category: str | None = None
    min_price: float | None = None
    max_price: float | None = None

    def active(self) -> bool:
        return self.in_stock or self.category is not None or self.min_price is not None or self.max_price is not None


def item_text(entry: dict[str, Any]) -> str:
    """What search matches an item on: title, category and attribute values."""
    parts = [entry.get("title") or "", entry.get("category") or ""]
    for value in (entry.get("attributes") or {}).values():
        parts.extend(str(v) for v in (value if isinstance(value, list) else [value]))
    return " ".join(p for p in parts if p)


@dataclass
class ServingModels:
    read_model: ReadModel
    transitions: OnlineTransitions = field(default_factory=OnlineTransitions)
    lexical: BM25Index = field(default_factory=BM25Index)

    def __post_init__(self) -> None:
        for table in (catalog.NAME, user_profiles.NAME):  # whatever the read model holds already
            for key, value in list(self.read_model.tables[table].items()):
                self.on_change(table, key, None, value)
        self.read_model.listeners.append(self.on_change)

    @property
    def version(self) -> str:
        return f"transitions-{self.transitions.events}"

    def on_change(self, table: str, key: str, old: Any, new: Any) -> None:
        if table == user_profiles.NAME and new is not None:
            previous, items = user_profiles.appended_items(old, new)
            self.transitions.learn_sequence(items, previous)
        elif table == catalog.NAME:
            if catalog.is_live(new):
                self.lexical.add(key, item_text(new))
            else:
                self.lexical.remove(key)

    def allow(self, filters: Filters) -> Callable[[str], bool] | None:
        if not filters.active():
            return None
        entries = self.read_model.tables[catalog.NAME]

        def ok(item_id: str) -> bool:
            e = entries.get(item_id)
            if not catalog.is_live(e):
                return False
            price = e.get("price")
            return not (
                (filters.in_stock and not (e.get("stock") or 0) > 0)
                or (filters.category is not None and e.get("category") != filters.category)
                or (filters.min_price is not None and (price is None or price < filters.min_price))
                or (filters.max_price is not None and (price is None or price > filters.max_price))
            )

        return ok

    def recommend(self, user_id: str | None, k: int, filters: Filters) -> tuple[str, list[tuple[str, float]]]:
        """(strategy, ranked items): personal from the user's sequence, else trending."""
        profile = self.read_model.tables[user_profiles.NAME].get(user_id) if user_id else None
        history = profile["recent"] if profile else []
        exclude = profile.get("purchased", []) if profile else []
        trending = self.read_model.popular(max(k * 4, 100))
        allow = self.allow(filters)
        ranked = self.transitions.rank(history, k, exclude=exclude, allow=allow, fallback=trending)
        return ("personal" if history else "trending"), ranked

    def similar(self, item_id: str, k: int, filters: Filters) -> list[tuple[str, float]]:
        return self.transitions.similar(item_id, k, allow=self.allow(filters))

    def search(self, query: str, user_id: str | None, k: int, filters: Filters) -> list[tuple[str, float]]:
        """BM25 over the live catalog, personalised by the user's transitions when given."""
        allow = self.allow(filters)
        hits = self.lexical.search(query, k=max(k * 5, 50))
        if allow is not None:
            hits = [(i, s) for i, s in hits if allow(i)]
        if user_id and hits:
            profile = self.read_model.tables[user_profiles.NAME].get(user_id)
            if profile and profile["recent"]:
                boost = self.transitions.scores(profile["recent"])
                top = hits[0][1]
                # at most a tenth of the best text score: personalisation reorders near-ties
                peak = max(boost.values(), default=0.0) or 1.0
                hits = [(i, s + 0.1 * top * boost.get(i, 0.0) / peak) for i, s in hits]
                hits.sort(key=lambda kv: -kv[1])
        return hits[:k]
