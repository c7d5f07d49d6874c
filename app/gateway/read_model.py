"""The gateway's in-memory copy of the tables, fed from their changelogs."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from tables.wire.records import latest_ts
from app.gateway import held_stats, profiles
from app.gateway.top_keys import TopKeys
from app.settings import Settings
from tables import ad_spend, campaigns, catalog, item_stats, user_profiles

TABLES = (user_profiles.NAME, item_stats.NAME, catalog.NAME, campaigns.NAME, ad_spend.NAME)


@dataclass
class ReadModel:
    """Latest value per key of each table; `clock` is the newest event time seen (seconds),
    never past the wall clock plus `max_clock_skew_s`: `/v1/items/popular`'s `as_of_ts` and
    every decayed score (trending, search signals) are taken at this clock, so one far-future
    stats record must not move it."""

    settings: Settings
    tables: dict[str, dict[str, Any]] = field(default_factory=lambda: {name: {} for name in TABLES})
    clock: float = 0.0
    # Called as listener(table, key, old, new) after each change (serving models learn here).
    listeners: list[Callable[[str, str, Any, Any], None]] = field(default_factory=list)
    _popular: tuple[tuple[str, float], ...] = ()  # a tuple: cached lists hold it (see serving.py)
    _popular_at: float = -1.0
    _popular_want: int = 0  # how long a list the last computation was asked for
    # log(popularity) + ts * ln2 / half-life per item: decay is the same for every item, so
    # this orders items as their popularity does at any later time, and never needs updating.
    # (kept with their largest as they change: top_keys.py)
    _pop_keys: TopKeys = field(default_factory=TopKeys)
    catalog_changes: int = 0  # bumped on every catalog record (cached filtered results check it)
    profile_bytes: int = 0  # profiles.held_bytes of every shopper held: what shoppers cost, RSS noise aside

    def apply(self, table: str, key: str, value: Any) -> None:
        """One changelog record: a value replaces, None deletes."""
        rows = self.tables[table]
        decoded = value  # as it came: item stats are read below, and held packed
        if table == user_profiles.NAME and value is not None:
            value = profiles.pack(value)  # the served fields, compactly
        elif table == item_stats.NAME and value is not None:
            value = held_stats.pack(value)  # likewise (and without the worker's replay offsets)
        old = rows.pop(key, None) if value is None else rows.get(key)
        if value is not None:
            rows[key] = value
        if table == user_profiles.NAME:
            self.profile_bytes += ((0 if value is None else profiles.held_bytes(key, value))
                                   - (0 if old is None else profiles.held_bytes(key, old)))
        if table == item_stats.NAME:
            if decoded is None:
                self._pop_keys.pop(key)
            else:
                max_ts = latest_ts(self.settings.limits.clock_skew_s)
                self.clock = max(self.clock, min(decoded["ts"], max_ts))
                self._pop_keys.set(key, item_stats.popularity_key(decoded, self.settings.features.popularity_half_life_s, max_ts))
        elif table == catalog.NAME:
            self.catalog_changes += 1
        if self.listeners:
            old, value = _as_read(table, old), _as_read(table, value)
            for listener in self.listeners:
                listener(table, key, old, value)

    def subscribe(self, listener: Callable[[str, str, Any, Any], None]) -> None:
        """Call `listener` for every record held now (as new), then for each change."""
        for table, rows in self.tables.items():
            for key, value in list(rows.items()):
                listener(table, key, None, _as_read(table, value))
        self.listeners.append(listener)

    def profile(self, user_id: str) -> profiles.ServedProfile | None:
        """A shopper's profile, read as the profile dict is (held as a compact record)."""
        return profiles.view(self.tables[user_profiles.NAME].get(user_id))

    def user(self, user_id: str) -> dict[str, Any] | None:
        profile = self.profile(user_id)
        return None if profile is None else user_profiles.public_view(user_id, profile)

    def stats(self, item_id: str) -> Any:
        """An item's stats, read as the stats dict is (held as a compact record), or None."""
        return held_stats.view(self.tables[item_stats.NAME].get(item_id))

    def item(self, item_id: str) -> dict[str, Any] | None:
        stats = self.stats(item_id)
        entry = self.tables[catalog.NAME].get(item_id)
        if stats is None and not catalog.is_live(entry):
            return None
        s = self.settings
        view: dict[str, Any] = {"item_id": item_id}
        if catalog.is_live(entry):
            view["catalog"] = catalog.public_view(item_id, entry)
        if stats is not None:
            view["stats"] = item_stats.public_view(
                item_id, stats, self.clock, s.features.popularity_half_life_s, s.features.trending_half_life_s)
        return view

    def popular(self, k: int, max_age_s: float = 1.0) -> tuple[tuple[str, float], ...]:
        """Top `k` items by decayed popularity now; recomputed at most every `max_age_s` of wall time."""
        return self.popular_list(k, max_age_s)[:k]

    def popular_list(self, k: int, max_age_s: float = 1.0) -> tuple[tuple[str, float], ...]:
        """The current trending list object itself (at least `k` long where there are that many
        items): the same object until it is recomputed, so a cached answer can tell."""
        now = time.monotonic()
        if now - self._popular_at > max_age_s or self._popular_want < k:
            half_life = self.settings.features.popularity_half_life_s
            stats = self.tables[item_stats.NAME]
            live = self.tables[catalog.NAME]
            # Largest keys first (one float per item, no decay maths), then only those are
            # checked against the catalog: deleted items drop out, and the list refills.
            want = max(k, 100)
            depth = want
            while True:
                keys = self._pop_keys.largest(depth)  # not a scan of every item: see top_keys.py
                top = [(i, item_stats.popularity_at(held_stats.view(stats[i]), self.clock, half_life)) for i, _ in keys
                       if not live or i not in live or catalog.is_live(live[i])]
                if len(top) >= want or depth >= len(self._pop_keys):
                    break
                depth *= 4
            self._popular = tuple(top[:want])
            self._popular_at, self._popular_want = now, want
        return self._popular

    def sizes(self) -> dict[str, int]:
        return {name: len(rows) for name, rows in self.tables.items()}


def _as_read(table: str, value: Any) -> Any:
    """A row as listeners read it: a profile or stats as the dict it came as (a view of its record)."""
    if table == user_profiles.NAME:
        return profiles.view(value)
    return held_stats.view(value) if table == item_stats.NAME else value
