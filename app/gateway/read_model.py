"""The gateway's in-memory copy of the tables, fed from their changelogs."""
from __future__ import annotations

import heapq
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from app.settings import Settings
from tables import catalog, item_stats, user_profiles

TABLES = (user_profiles.NAME, item_stats.NAME, catalog.NAME)


@dataclass
class ReadModel:
    """Latest value per key of each table; `clock` is the newest event time seen (seconds)."""

    settings: Settings
    tables: dict[str, dict[str, Any]] = field(default_factory=lambda: {name: {} for name in TABLES})
    clock: float = 0.0
    # Called as listener(table, key, old, new) after each change (serving models learn here).
    listeners: list[Callable[[str, str, Any, Any], None]] = field(default_factory=list)
    _popular: list[tuple[str, float]] = field(default_factory=list)
    _popular_at: float = -1.0

    def apply(self, table: str, key: str, value: Any) -> None:
        """One changelog record: a value replaces, None deletes."""
        rows = self.tables[table]
        old = rows.pop(key, None) if value is None else rows.get(key)
        if value is not None:
            rows[key] = value
            if table == item_stats.NAME and value["ts"] > self.clock:
                self.clock = value["ts"]
        for listener in self.listeners:
            listener(table, key, old, value)

    def subscribe(self, listener: Callable[[str, str, Any, Any], None]) -> None:
        """Call `listener` for every record held now (as new), then for each change."""
        for table, rows in self.tables.items():
            for key, value in list(rows.items()):
                listener(table, key, None, value)
        self.listeners.append(listener)

    def user(self, user_id: str) -> dict[str, Any] | None:
        profile = self.tables[user_profiles.NAME].get(user_id)
        return None if profile is None else user_profiles.public_view(user_id, profile)

    def item(self, item_id: str) -> dict[str, Any] | None:
        stats = self.tables[item_stats.NAME].get(item_id)
        entry = self.tables[catalog.NAME].get(item_id)
        if stats is None and not catalog.is_live(entry):
            return None
        s = self.settings
        view: dict[str, Any] = {"item_id": item_id}
        if catalog.is_live(entry):
            view["catalog"] = catalog.public_view(item_id, entry)
        if stats is not None:
            view["stats"] = item_stats.public_view(
                item_id, stats, self.clock, s.popularity_half_life_s, s.trending_half_life_s)
        return view

    def popular(self, k: int, max_age_s: float = 1.0) -> list[tuple[str, float]]:
        """Top items by decayed popularity now; recomputed at most every `max_age_s` of wall time."""
        now = time.monotonic()
        if now - self._popular_at > max_age_s or len(self._popular) < k:
            half_life = self.settings.popularity_half_life_s
            stats = self.tables[item_stats.NAME]
            live = self.tables[catalog.NAME]
            candidates = (
                (item_id, item_stats.popularity_at(v, self.clock, half_life))
                for item_id, v in stats.items()
                if not live or catalog.is_live(live.get(item_id)) or item_id not in live
            )
            self._popular = heapq.nlargest(max(k, 100), candidates, key=lambda kv: kv[1])
            self._popular_at = now
        return self._popular[:k]

    def sizes(self) -> dict[str, int]:
        return {name: len(rows) for name, rows in self.tables.items()}
