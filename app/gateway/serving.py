"""The gateway's serving models, kept current from the same changelogs as its read model.

- recommendations: online item-to-item transitions learned from each profile change, with
  trending items for users the stream has not seen;
- search: a BM25 index over the live catalog (upserts re-index, deletes remove), the
  fallback when no search model is served (see dense_search.py), and the personal nudge.
Both change under the single-threaded event loop between requests, so a request always
ranks against one whole state; `version` names it.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from app.gateway import profiles
from app.gateway.read_model import ReadModel
from app.gateway.rank_batcher import RankBatcher
from app.gateway.rec_cache import StampedCache
from models.lexical import BM25Index
from models.ranker import VersionedRanker, blend
from models.rec.embedding_version import EmbeddingRecVersion
from models.rec.neural_version import NeuralRecVersion
from models.rec.online_transitions import OnlineTransitions
from tables import catalog, item_stats, user_profiles

# Most candidates of each ranking a filtered recommendation examines: a filter that (almost)
# nothing passes must not walk the whole catalog on the event loop (see `_rankings`).
FILTER_SCAN = 2000


@dataclass(frozen=True)
class Filters:
    """Business filters; a filter on a catalog field passes only items the catalog knows."""

    in_stock: bool = False
    category: str | None = None
    min_price: float | None = None
    max_price: float | None = None

    def key(self) -> tuple[bool, str | None, float | None, float | None]:
        """The fields as a plain tuple (dataclasses.astuple deep-copies: slow on every request)."""
        return self.in_stock, self.category, self.min_price, self.max_price

    def active(self) -> bool:
        return self.in_stock or self.category is not None or self.min_price is not None or self.max_price is not None


def item_text(entry: dict[str, Any]) -> str:
    """What search matches an item on: title, category and attribute values."""
    parts = [entry.get("title") or "", entry.get("category") or ""]
    for value in (entry.get("attributes") or {}).values():
        parts.extend(str(v) for v in (value if isinstance(value, list) else [value]))
    return " ".join(p for p in parts if p)


Second = EmbeddingRecVersion | NeuralRecVersion | None  # the model blended with the online one


@dataclass(frozen=True)
class Ranking:
    items: list[tuple[str, float]]
    version: str
    strategy: str = "personal"
    # The cached list this answer was served from (the same object for every answer from it):
    # sponsored slots keep what they worked out for it (app/gateway/ads.py, `_planned`).
    source: tuple[tuple[str, float], ...] | None = None


@dataclass
class ServingModels:
    read_model: ReadModel
    embedding_blend: float = 0.5
    search_dense_weight: float = 0.5
    transitions: OnlineTransitions = field(default_factory=OnlineTransitions)
    lexical: BM25Index = field(default_factory=BM25Index)
    # Swapped whole by `install` / `install_online`; a request reads each reference once.
    embedding: EmbeddingRecVersion | None = None
    # The learner's online SASRec (rec-neural versions); served when its validated blend weight is above 0.
    neural: NeuralRecVersion | None = None
    online: VersionedRanker | None = None  # models.online.serving.ServingRecModel, from the learner's versions
    online_click: Any = None  # models.online.click_serving.ServingClickModel, same version
    click_weight: float = 0.1
    cache_size: int = 100_000  # recommendation lists kept (0: off); see rec_cache.py
    cache_bytes: int = 64 * 1024 * 1024  # and the bytes they may hold (0: off)
    filter_scan: int = FILTER_SCAN
    # Bumped by every install: cached lists name the models they came from by it, not by the
    # model objects, so that an entry is plain data the cyclic GC does not track (rec_cache.py).
    generation: int = 0
    # The learner publishes a version every few seconds, and each one emptied the cache: a
    # returning shopper's list was ranked again though nothing of theirs had changed. A list
    # ranked by an online version is served until a newer one has served this long (0: at once);
    # a rollback, and every other model's install, still ends every list at once.
    online_staleness_s: float = 0.0
    online_generation: int = 0  # bumped by each online version installed within that grace
    # online generation -> when the next one was installed (monotonic), while within the grace
    _superseded: dict[int, float] = field(default_factory=dict)
    clock: Callable[[], float] = time.monotonic  # for the grace (tests set their own)

    def __post_init__(self) -> None:
        # (items, model version, strategy, online generation)
        self.cache: StampedCache[tuple[tuple[tuple[str, float], ...], str, str, int]] = StampedCache(
            self.cache_size, self.cache_bytes)
        self.batcher = RankBatcher()
        self.read_model.subscribe(self.on_change)

    @property
    def version(self) -> str:
        return self._version(self.second(), self.online)

    def _version(self, embedding: Second, online: VersionedRanker | None = None) -> str:
        live = f"online-v{online.version}" if online is not None else f"transitions-{self.transitions.events}"
        return f"{embedding.version}+{live}" if embedding is not None else live

    def install(self, model: EmbeddingRecVersion) -> None:
        self.embedding = model
        self.generation += 1

    def install_neural(self, model: NeuralRecVersion) -> None:
        self.neural = model
        self.generation += 1

    def second(self) -> Second:
        """The model blended with the online one: the learner's neural model where its validated
        weight is above 0, else the offline item vectors (if any)."""
        neural = self.neural
        return neural if neural is not None and neural.blend > 0 else self.embedding

    def install_online(self, model: VersionedRanker, click: Any = None, rollback: bool = False) -> None:
        self.online, self.online_click = model, click
        if self.transitions.events:
            # The learner's version holds its own transitions: the gateway's are no longer read
            # (nor learned: on_change), and their memory goes.
            self.transitions = OnlineTransitions(self.transitions.config)
        if rollback or self.online_staleness_s <= 0:
            self.generation += 1
            return
        now = self.clock()
        self._superseded = {g: at for g, at in self._superseded.items() if at > now - self.online_staleness_s}
        self._superseded[self.online_generation] = now
        self.online_generation += 1

    def _oldest_fresh_online(self) -> int:
        """The oldest online generation whose lists may still be served: every later one's
        successor came less than `online_staleness_s` ago."""
        oldest, horizon = self.online_generation, self.clock() - self.online_staleness_s
        for generation, superseded_at in reversed(self._superseded.items()):
            if superseded_at <= horizon:
                break
            oldest = generation
        return oldest

    def on_change(self, table: str, key: str, old: Any, new: Any) -> None:
        if table == user_profiles.NAME and new is not None and self.online is None:
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

    async def recommend(self, user_id: str | None, k: int, filters: Filters) -> Ranking:
        """Personal from the user's sequence (transitions blended with the embedding model),
        trending for users the stream has not seen."""
        generation = self.generation  # before the models: an install in between only costs a miss
        embedding, online = self.second(), self.online
        record = self.read_model.tables[user_profiles.NAME].get(user_id) if user_id else None
        # Valid while the profile record, the models (the gateway's own transitions change with
        # every event until a learner version serves) and, for filters, the catalog are the same.
        stamp = (record, generation, self.transitions.events if online is None else 0,
                 self.read_model.catalog_changes if filters.active() else 0)
        # Lists that trending filled also hold the trending list they used (recomputed each second).
        # Keys, stamps and lists are plain tuples of strings and numbers (the profile record is
        # one too), which Python's cyclic GC stops tracking: 100k cached lists would otherwise
        # be walked by every full collection (a pause of the whole gateway, longer as the cache fills).
        key = (user_id, k, *filters.key())
        trending = self.read_model.popular_list(max(k * 4, 100))
        oldest = self._oldest_fresh_online()
        cached = self.cache.get(key, stamp, extra=(trending,), valid=lambda entry: entry[3] >= oldest)
        if cached is not None:
            items, version, strategy, _ = cached
            return Ranking(list(items), version, strategy, source=items)
        online_generation = self.online_generation  # read before the await: the list is of this one's model
        ranking, used_trending = await self._recommend(profiles.view(record), embedding, online, trending, k, filters)
        self.cache.put(key, (*stamp, trending) if used_trending else stamp,
                       (tuple(ranking.items), ranking.version, ranking.strategy, online_generation))
        return ranking

    async def _recommend(self, profile: profiles.ServedProfile | None, embedding: Second,
                         online: VersionedRanker | None,
                         trending: Sequence[tuple[str, float]], k: int, filters: Filters) -> tuple[Ranking, bool]:
        history = profile["recent"] if profile else []
        # What the user bought or just looked at is not news to them.
        exclude = [*profile.get("purchased", []), *history] if profile else []
        allow = self.allow(filters)
        ranked = await self._personal(embedding, online, history, k, exclude, allow)
        filled = len(ranked) < k
        if filled:  # trending fills what the history cannot
            ranked += self.transitions.rank([], k - len(ranked), exclude=[*exclude, *(i for i, _ in ranked)],
                                            allow=allow, fallback=trending[: max(k * 4, 100)])
        return Ranking(ranked, self._version(embedding, online), "personal" if history else "trending"), filled

    async def similar(self, item_id: str, k: int, filters: Filters) -> Ranking:
        embedding, online = self.second(), self.online
        ranked = await self._personal(embedding, online, [item_id], k, [item_id], self.allow(filters))
        return Ranking(ranked, self._version(embedding, online))

    async def _personal(self, embedding: Second, online: VersionedRanker | None,
                        history: list[str], k: int,
                        exclude: list[str], allow: Callable[[str], bool] | None) -> list[tuple[str, float]]:
        if not history:
            return []
        depth = max(4 * k, 50)
        rankings = await self._rankings(embedding, online, history, depth, exclude, allow)
        if embedding is None:
            return rankings[0][:k]
        w = embedding.blend if isinstance(embedding, NeuralRecVersion) else self.embedding_blend
        return blend([(1.0 - w, rankings[0]), (w, rankings[1])], k)

    async def _rankings(self, embedding: Second, online: VersionedRanker | None,
                        history: list[str], depth: int,
                        exclude: list[str], allow: Callable[[str], bool] | None) -> list[list[tuple[str, float]]]:
        """The top `depth` that `allow` passes by transitions, and by the embedding model if any.

        A filter is applied here, to each model's unfiltered top 4 x depth, then (if too few
        passed) to its top `filter_scan`, never deeper: the models, given the filter, would
        walk their whole catalog for one that (almost) nothing passes. The result is what
        the models would give with the filter whenever `filter_scan` candidates hold `depth`
        that pass, else fewer.
        """
        scan = depth if allow is None else min(4 * depth, self.filter_scan)
        while True:
            ranked = await self._unfiltered(embedding, online, history, scan, exclude)
            if allow is None:
                return ranked
            kept = [[(i, s) for i, s in r if allow(i)][:depth] for r in ranked]
            # a ranking shorter than `scan` held every candidate its model has
            if scan >= self.filter_scan or all(len(r) < scan or len(f) >= depth for r, f in zip(ranked, kept)):
                return kept
            scan = self.filter_scan

    async def _unfiltered(self, embedding: Second, online: VersionedRanker | None,
                          history: list[str], n: int,
                          exclude: list[str]) -> list[list[tuple[str, float]]]:
        # The learner's version holds its own transitions (a version behind the gateway's);
        # without one, the gateway's transitions, learned from each profile change, rank.
        if online is not None:
            rankings = [online.rank(history, n, exclude=exclude)]
        else:
            rankings = [self.transitions.rank(history, n, exclude=exclude)]
        if embedding is not None:
            rankings.append(await self.batcher.rank(embedding, history, n, exclude))
        return rankings

    def search(
        self, query: str, user_id: str | None, k: int, filters: Filters,
        dense_hits: list[tuple[str, float]] = (), dense_version: str | None = None,  # type: ignore[assignment]
    ) -> Ranking:
        """Without a search model: relative BM25 plus dense cosine, personalised by the user's transitions."""
        allow = self.allow(filters)
        lexical = self.lexical.search(query, k=max(k * 5, 50))
        w = self.search_dense_weight if dense_hits else 0.0
        best = lexical[0][1] if lexical else 1.0
        scores: dict[str, float] = {i: (1.0 - w) * s / best for i, s in lexical}
        for item, cosine in dense_hits:
            if item in self.lexical:  # deleted since it was encoded: the lexical index is current
                scores[item] = scores.get(item, 0.0) + w * max(cosine, 0.0)
        hits = [(i, s) for i, s in scores.items() if allow is None or allow(i)]
        hits = self._personalise(hits, user_id, scale=1.0)  # scores are relative: 1 is a perfect text match
        hits = self._click_nudge(hits, scale=1.0)
        hits.sort(key=lambda kv: -kv[1])
        return Ranking(hits[:k], f"bm25+{dense_version}" if dense_hits else "bm25")

    def search_ranked(self, hits: list[tuple[str, float]], version: str, user_id: str | None, k: int) -> Ranking:
        """Hits a search model ranked (best first, filtered), personalised by the user's transitions."""
        # Ranker scores are logits of no fixed range: the nudge scales with their spread.
        spread = hits[0][1] - hits[-1][1] if len(hits) > 1 else 1.0
        hits = self._personalise(hits, user_id, scale=spread)
        hits = self._click_nudge(hits, scale=spread)
        hits.sort(key=lambda kv: -kv[1])  # stable: the model's order stands where the nudge is 0
        return Ranking(hits[:k], version)

    def _click_nudge(self, hits: list[tuple[str, float]], scale: float) -> list[tuple[str, float]]:
        """Items people click more than their position explains (the online click model) move up."""
        click = self.online_click
        if click is None or not len(click) or not hits:
            return hits
        relevance = click.probabilities([i for i, _ in hits])
        return [(i, s + self.click_weight * scale * r) for (i, s), r in zip(hits, relevance)]

    def _personalise(self, hits: list[tuple[str, float]], user_id: str | None, scale: float) -> list[tuple[str, float]]:
        if not user_id or not hits:
            return hits
        profile = self.read_model.profile(user_id)
        if profile is None or not profile["recent"]:
            return hits
        online = self.online
        successors = getattr(online, "successor_scores", None)  # a learner's version (ServingRecModel)
        boost = (successors(profile["recent"], self.transitions.config.weights) if successors is not None
                 else self.transitions.scores(profile["recent"]))
        peak = max(boost.values(), default=0.0) or 1.0
        # at most a tenth of the score scale: personalisation reorders near-ties
        return [(i, s + 0.1 * scale * boost.get(i, 0.0) / peak) for i, s in hits]

    def item_signals(self, item_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Decayed popularity and CTR (0 before any impression) of items, [n] float32 each.

        Called from the search thread: it only reads, and stats records are replaced whole.
        """
        now, half_life = self.read_model.clock, self.read_model.settings.features.popularity_half_life_s
        found = list(map(self.read_model.stats, item_ids))
        popularity = np.array([item_stats.popularity_at(s, now, half_life) if s else 0.0 for s in found], np.float32)
        ctr = np.array([(item_stats.ctr(s) or 0.0) if s else 0.0 for s in found], np.float32)
        return popularity, ctr
