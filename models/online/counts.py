"""Streaming item-to-item co-occurrence counts, bounded, keyed by item id, in several channels.

The count-based half of the online recommender. Channel 0 is `count(a -> b)` (b came right
after a); channels 1..gaps-1 are skip transitions (b came g+1 steps after a); the last channel,
when `reverse`, is `count(b -> a)` read from a (what came right BEFORE a: co-purchase is
nearly symmetric). Every channel keeps its own source degree for the normalisation.
Popularity lives beside the embedding rows (see rec_model) so that it is evicted with them.

A reader (a gateway's serving model, the learner's snapshot of it) holds rows it never writes
as `Successors`, a flat tuple: about half a Counter's bytes (see there).

Copies share their per-source Counters copy-on-write: the learner snapshots its model at every
version, and copying ~600k counts took about a second where sharing takes milliseconds. Each
object writes only to Counters it owns (made or copied since it was copied), so a copy is
never changed by the original's learning, nor the original by the copy's.
"""
from __future__ import annotations

import heapq
import math
import sys
from collections import Counter
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from itertools import chain, islice
from operator import itemgetter
from typing import Any

import numpy as np

from models.steps import Steps, emptied, run_steps

Id = Hashable
REMEMBER_FROM = 32  # successors from which a source's terms are kept for the rest of a features_among call
SLICE = 4096  # ids decoded per step of upsert_arrays_in_steps
ROWS_PER_STEP = 256  # rows loaded per step of upsert_arrays_in_steps (0.2 ms of short rows, timeit)
EMPTY_STEP = 4096  # sources dropped per step of emptied_in_steps


class Successors(Mapping[Id, int]):
    """A read-only count row: (successor, count) pairs in one flat tuple, in the row's order.

    A gateway holds hundreds of thousands of rows, most of one or two successors: as a Counter
    such a row took 217 B, as this about 100 B (3,361 B against 1,689 B at a hundred), and the
    counts of a 600k-event scale run's learner, loaded as a gateway loads them, 35.6 MB against
    18.0 MB (tracemalloc). Reading its pairs in order costs about what a dict's does (a history's
    `weighted_sum` over those counts, 21-23 µs against 20 µs, timed beside a bench: rough); a
    lookup by id is a scan, so readers go through `items()` or `among` (a row holds at most
    `features_per_source`).
    """

    __slots__ = ("_pairs",)

    def __init__(self, pairs: Mapping[Id, int] | Iterable[tuple[Id, int]]) -> None:
        items = pairs.items() if isinstance(pairs, Mapping) else pairs
        self._pairs: tuple[Any, ...] = tuple(chain.from_iterable(items))

    @classmethod
    def of(cls, successors: Sequence[Id], counts: Sequence[int]) -> "Successors":
        """The row of `successors` with their `counts`, in that order: how a load makes one (the
        constructor's ABC check and pair tuples took a third of a version build, under cProfile)."""
        flat: list[Any] = [None] * (2 * len(successors))
        flat[::2], flat[1::2] = successors, counts
        row = cls.__new__(cls)
        row._pairs = tuple(flat)
        return row

    def __len__(self) -> int:
        return len(self._pairs) >> 1

    def __iter__(self) -> Iterator[Id]:
        return islice(self._pairs, 0, None, 2)

    def __getitem__(self, key: Id) -> int:
        pairs, at = self._pairs, 0
        while True:  # an id at an even position only: a count may equal an id (ints in tests)
            try:
                at = pairs.index(key, at)
            except ValueError:
                raise KeyError(key) from None
            if not at & 1:
                return int(pairs[at + 1])
            at += 1

    def __contains__(self, key: object) -> bool:
        try:
            self[key]
        except KeyError:
            return False
        return True

    def items(self) -> Iterator[tuple[Id, int]]:  # type: ignore[override]
        pairs = iter(self._pairs)
        return zip(pairs, pairs)

    def keys(self) -> tuple[Id, ...]:  # type: ignore[override]
        return self._pairs[::2]

    def values(self) -> tuple[int, ...]:  # type: ignore[override]
        return self._pairs[1::2]

    def among(self, column: Mapping[Id, int], scale: float) -> tuple[list[int], list[float]]:
        """(column, count x scale) of the successors that have a column, in the row's order."""
        get, pairs = column.get, iter(self._pairs)
        found = [(c, n * scale) for i, n in zip(pairs, pairs) if (c := get(i)) is not None]
        return [c for c, _ in found], [v for _, v in found]

    def __repr__(self) -> str:
        return f"Successors({list(self.items())!r})"


Row = Mapping[Id, int]  # a Counter where this object writes it, Successors where it only reads


class TransitionCounts:
    """count(a -> b) per channel with at most ~2 * max_neighbours successors kept per source."""

    def __init__(self, max_neighbours: int = 500, gaps: int = 1, reverse: bool = False) -> None:
        self.max_neighbours = max_neighbours
        self.gaps = max(1, gaps)
        self.reverse = reverse
        n = self.channels
        self.neighbours: list[dict[Id, Row]] = [{} for _ in range(n)]
        self.degrees: list[dict[Id, int]] = [{} for _ in range(n)]
        self._owned: list[set[Id]] = [set() for _ in range(n)]  # sources whose Counter only we hold
        # source -> (its Counter, its degree then, its strongest successors) per channel: see
        # strongest. An entry goes when its row is replaced or dropped: it holds no Counter the
        # table does not, so it costs a tuple of ids, never a second copy of a row.
        self._strongest: list[dict[Id, tuple[Row, int, tuple[Id, ...]]]] = [{} for _ in range(n)]

    def __deepcopy__(self, memo: dict[int, Any]) -> "TransitionCounts":
        """An independent copy that shares every Counter until one side writes to it."""
        out = self.empty_like()
        out.neighbours = [dict(t) for t in self.neighbours]
        out.degrees = [dict(t) for t in self.degrees]
        self._owned = [set() for _ in self.neighbours]  # shared now: the next write copies
        memo[id(self)] = out
        return out

    def _writable(self, channel: int, source: Id) -> Counter[Id]:
        """`source`'s Counter in `channel`, copied first if another object may hold it."""
        table, owned = self.neighbours[channel], self._owned[channel]
        if source not in owned:  # a reader's rows are never owned: written to, one becomes a Counter
            row = table.get(source)
            table[source] = Counter(row if row is None or isinstance(row, Counter) else dict(row.items()))
            owned.add(source)
            self._strongest[channel].pop(source, None)  # it named the Counter just replaced
        return table[source]  # type: ignore[return-value]

    @property
    def channels(self) -> int:
        return self.gaps + int(self.reverse)

    # channel 0, the plain next-item counts (kept under their historical names)
    @property
    def next(self) -> dict[Id, Row]:
        return self.neighbours[0]

    @property
    def out_degree(self) -> dict[Id, int]:
        return self.degrees[0]

    def empty_like(self) -> "TransitionCounts":
        return TransitionCounts(self.max_neighbours, self.gaps, self.reverse)

    def add(self, previous: Id, item: Id, channel: int = 0) -> None:
        neighbours = self._writable(channel, previous)
        neighbours[item] += 1
        degree = self.degrees[channel]
        degree[previous] = degree.get(previous, 0) + 1
        if len(neighbours) > 2 * self.max_neighbours:
            # halving in one go keeps the cost amortised O(1) per event
            for b, _ in neighbours.most_common()[self.max_neighbours:]:
                del neighbours[b]
            self._strongest[channel].pop(previous, None)

    def add_sample(self, history: Sequence[Id], target: Id, known: Iterable[Id] | None = None) -> set[Id]:
        """Count what `target` following `history` (oldest first) adds to every channel; items
        not in `known` (when given) are left out. Returns the sources whose rows changed."""
        allowed = None if known is None else set(known)

        def ok(x: Id) -> bool:
            return allowed is None or x in allowed

        changed: set[Id] = set()
        if not ok(target):
            return changed
        for g in range(1, min(self.gaps, len(history)) + 1):
            a = history[-g]
            if ok(a):
                self.add(a, target, g - 1)
                changed.add(a)
        if self.reverse and history and ok(history[-1]):
            self.add(target, history[-1], self.gaps)
            changed.add(target)
        return changed

    def drop(self, items: Iterable[Id]) -> None:
        """Forget the rows of these sources (they were evicted). Counts INTO them stay until pruned."""
        for item in items:
            for c in range(self.channels):
                self._remove_row(c, item)

    def __contains__(self, source: Id) -> bool:
        return any(source in n for n in self.neighbours)

    def features(self, histories: Sequence[Sequence[Id]], k: int) -> list[tuple[int, int, Id, float]]:
        """Non-zero feature values as (sample, f, item, value), f = channel * k + j:
        count_c(h_j -> i) / sqrt(1 + degree_c(h_j)), h_0 the most recent history item
        (histories are oldest first)."""
        out: list[tuple[int, int, Id, float]] = []
        for b, history in enumerate(histories):
            for f, neighbours, norm in self._sources(history, k):
                out.extend((b, f, item, count * norm) for item, count in neighbours.items())
        return out

    def features_among(self, histories: Sequence[Sequence[Id]], k: int, column: Mapping[Id, int], per_source: int = 0
                       ) -> tuple[list[int], list[int], list[int], list[float]]:
        """`features` restricted to the items that have a column, as (samples, f, columns, values)
        lists: a training step needs only its candidates, and building every successor's tuple
        to filter it afterwards cost half the learner's step. `per_source` > 0 reads only each
        history item's strongest successors in a channel (see `strongest`), as serving does."""
        bs: list[int] = []
        fs: list[int] = []
        cs: list[int] = []
        vs: list[float] = []
        keys = column.keys()
        # A popular item is in many histories of a batch: its terms are found once a call. Only
        # a popular item's: every kept term is three live containers, and keeping them all
        # made the garbage collector cost more than the memo saved.
        found: list[dict[Id, tuple[list[int], list[float]]]] = [{} for _ in self.neighbours]
        tables = list(enumerate(zip(self.neighbours, self.degrees, found)))
        # Rows past this size go through _terms_among (kept, and cut to per_source): a cut
        # below REMEMBER_FROM must start there too.
        remember_from = min(REMEMBER_FROM, per_source) if per_source > 0 else REMEMBER_FROM
        for b, history in enumerate(histories):
            recent = history[::-1][:k]  # most recent first: position j is f = channel * k + j
            for ch, (table, degree, known) in tables:
                for j, a in enumerate(recent):
                    neighbours = table.get(a)
                    if not neighbours:
                        continue
                    if len(neighbours) > remember_from:
                        terms = known.get(a)
                        if terms is None:
                            terms = known[a] = self._terms_among(ch, a, neighbours, column, per_source)
                        columns, values = terms
                    elif type(neighbours) is Successors:  # a reader's row: one pass over its pairs
                        columns, values = neighbours.among(column, 1.0 / math.sqrt(1.0 + degree[a]))
                    else:
                        # the common ids, looked up over the smaller side in C (a keys view
                        # iterates the smaller); map and the list walk them in one order
                        common = keys & neighbours.keys()
                        if not common:
                            continue
                        norm = 1.0 / math.sqrt(1.0 + degree[a])
                        columns, values = list(map(column.__getitem__, common)), [neighbours[i] * norm for i in common]
                    if columns:
                        bs.extend([b] * len(columns))
                        fs.extend([ch * k + j] * len(columns))
                        cs.extend(columns)
                        vs.extend(values)
        return bs, fs, cs, vs

    def _terms_among(self, channel: int, source: Id, neighbours: Row, column: Mapping[Id, int],
                     per_source: int) -> tuple[list[int], list[float]]:
        """(columns, count / sqrt(1 + degree)) of `source`'s successors in `channel` that have a
        column: its `per_source` strongest (all if 0)."""
        norm = 1.0 / math.sqrt(1.0 + self.degrees[channel][source])
        if 0 < per_source < len(neighbours):
            common: Iterable[Id] = [i for i in self.strongest(channel, source, per_source) if i in column and i in neighbours]
        elif type(neighbours) is Successors:
            return neighbours.among(column, norm)
        else:
            common = column.keys() & neighbours.keys()
        return list(map(column.__getitem__, common)), [neighbours[i] * norm for i in common]

    def strongest(self, channel: int, source: Id, n: int) -> tuple[Id, ...]:
        """About the `n` strongest successors of `source` in `channel` (by count, ties in the
        Counter's order). Kept per source and found again once its degree has grown by a
        quarter (or its row was pruned or replaced): a popular source is read and written in
        every batch, and finding them at every read cost more than reading them. A successor
        that rose into the strongest since shows up late, and its count is read when it does."""
        neighbours = self.neighbours[channel][source]
        degree = self.degrees[channel][source]
        kept = self._strongest[channel].get(source)
        if kept is not None and kept[0] is neighbours and degree < kept[1] * 1.25 and len(kept[2]) == min(n, len(neighbours)):
            return kept[2]
        top = tuple(heapq.nlargest(n, neighbours, key=neighbours.__getitem__))
        self._strongest[channel][source] = (neighbours, degree, top)
        return top

    def weighted_sum(self, history: Sequence[Id], k: int, weights: Sequence[float]) -> dict[Id, float]:
        """sum over f of weights[f] * value for each item `features([history], k)` reaches: the
        same numbers, without building the feature list (a served recommendation needs only
        this sum, and the list cost most of its time)."""
        out: dict[Id, float] = {}
        get = out.get
        for f, neighbours, norm in self._sources(history, k):
            w = weights[f]
            for item, count in neighbours.items():
                out[item] = get(item, 0.0) + w * (count * norm)
        return out

    def _sources(self, history: Sequence[Id], k: int) -> Iterable[tuple[int, Row, float]]:
        """(f, successor counts, 1 / sqrt(1 + degree)) of each channel's row for each of the
        last k history items that has one, channel by channel, most recent item first."""
        for c, (table, degree) in enumerate(zip(self.neighbours, self.degrees)):
            for j in range(min(k, len(history))):
                a = history[len(history) - 1 - j]
                neighbours = table.get(a)
                if neighbours:
                    yield c * k + j, neighbours, 1.0 / math.sqrt(1.0 + degree[a])

    def edges(self) -> int:
        return sum(len(v) for table in self.neighbours for v in table.values())

    def to_json(self, sources: Iterable[Id] | None = None) -> list[Any]:
        """[[source, out_degree, [[item, count], ...], extra], ...] for all or the given sources.

        The first three fields are channel 0 (degree 0 and no pairs when the source has no row
        there); `extra`, present when there is more than one channel, is [[degree, pairs], ...]
        of channels 1.. ."""
        if sources is None:
            keys: Iterable[Id] = dict.fromkeys(a for table in self.neighbours for a in table)
        else:
            keys = [s for s in dict.fromkeys(sources) if s in self]

        def channel(c: int, a: Id) -> list[Any]:
            pairs = self.neighbours[c].get(a)
            return [self.degrees[c].get(a, 0), [[b, n] for b, n in pairs.items()] if pairs else []]

        out: list[Any] = []
        for a in keys:
            row = [a, *channel(0, a)]
            if self.channels > 1:
                row.append([channel(c, a) for c in range(1, self.channels)])
            out.append(row)
        return out

    def load_json(self, rows: list[Any], keep: int = 0) -> None:
        """Upsert sources from `to_json` output (replacing their rows in every channel given).

        `keep` > 0 holds only each row's `keep` strongest successors (ties in the row's order),
        degrees whole, as `Successors`: for a reader that reads no more (`features_among` with
        per_source = keep). A row always comes whole, so a later upsert of it loses nothing."""
        for row in rows:
            a = row[0]
            channels = [row[1:3], *(row[3] if len(row) > 3 else [])]
            for c, (degree, pairs) in enumerate(channels[: self.channels]):
                if pairs or degree:
                    self._put_row(c, a, [p[0] for p in pairs], [p[1] for p in pairs], degree, keep)
                else:
                    self._remove_row(c, a)

    def to_arrays(self, sources: Iterable[Id] | None = None) -> dict[str, np.ndarray]:
        """Every count, or the rows of `sources`, as flat arrays (`load_arrays` / `upsert_arrays`
        read them back): a checkpoint's binary form, and a version's.

        `ids_blob`/`ids_end`: every id once, UTF-8 end to end, and where each ends; `upserted`
        (id numbers): the sources whose rows these replace in every channel (all of them, when
        `sources` is None); per channel c, CSR rows: `c{c}.sources` (id numbers), `.degrees`,
        `.ends` (where each source's successors end), `.targets` (id numbers) and `.counts`;
        nothing when none of `sources` has a row. Both used to be JSON: a checkpoint's took
        ~12% of a worker's time, and a gateway parsed a version's in one C call that held the
        GIL, so its event loop stood still for it (bench/version_install.py). Ids must be strings.
        """
        if sources is None:
            tables = self.neighbours
            upserted: list[Id] = list(dict.fromkeys(chain.from_iterable(tables)))
        else:
            upserted = [a for a in dict.fromkeys(sources) if a in self]
            if not upserted:
                return {}  # no rows to replace (a version of the neural learner's, or a quiet one)
            tables = [{a: t[a] for a in upserted if a in t} for t in self.neighbours]
        ids = list(dict.fromkeys(chain(upserted, *(chain.from_iterable(t.values()) for t in tables))))
        number = {x: i for i, x in enumerate(ids)}.__getitem__
        encoded = [str(x).encode("utf-8") for x in ids]  # ids are strings (see above)
        out: dict[str, np.ndarray] = {"ids_blob": np.frombuffer(b"".join(encoded), dtype=np.uint8).copy(),
               "ids_end": np.cumsum(np.fromiter(map(len, encoded), np.int64, len(encoded)), dtype=np.int64),
               "upserted": np.fromiter(map(number, upserted), np.int32, len(upserted))}
        for c, (table, degree) in enumerate(zip(tables, self.degrees)):
            keys = list(table)
            sizes = np.fromiter(map(len, table.values()), np.int64, len(keys))
            total = int(sizes.sum())
            out[f"c{c}.sources"] = np.fromiter(map(number, keys), np.int32, len(keys))
            out[f"c{c}.degrees"] = np.array([degree.get(a, 0) for a in keys], dtype=np.int64)
            out[f"c{c}.ends"] = np.cumsum(sizes, dtype=np.int64)
            out[f"c{c}.targets"] = np.fromiter(map(number, chain.from_iterable(table.values())), np.int32, total)
            out[f"c{c}.counts"] = np.fromiter(chain.from_iterable(n.values() for n in table.values()), np.int64, total)
        return out

    def load_arrays(self, arrays: Mapping[str, np.ndarray], keep: int = 0) -> None:
        """Replace every count with what `to_arrays` wrote (`keep` as in `upsert_arrays`)."""
        self.neighbours = [{} for _ in range(self.channels)]
        self.degrees = [{} for _ in range(self.channels)]
        self._owned = [set() for _ in range(self.channels)]
        self._strongest = [{} for _ in range(self.channels)]
        self.upsert_arrays(arrays, keep)

    def upsert_arrays(self, arrays: Mapping[str, np.ndarray], keep: int = 0) -> list[Id]:
        """Replace the rows of the sources `to_arrays` wrote (`upserted`, returned) in every
        channel; a source with no row in a channel loses the one it had there. `keep` > 0 holds
        only each row's `keep` strongest successors (ties in the row's order), degrees whole, as
        `load_json` does."""
        return run_steps(self.upsert_arrays_in_steps(arrays, keep))

    def upsert_arrays_in_steps(self, arrays: Mapping[str, np.ndarray], keep: int = 0) -> Steps[list[Id]]:
        """`upsert_arrays` in steps of a slice of ids or `ROWS_PER_STEP` rows, never one C call over
        a whole version: a gateway runs them on its event loop, between requests (models/steps.py)."""
        blob = arrays["ids_blob"].tobytes()
        ends = arrays["ids_end"]
        ids: list[Id] = []
        for at in range(0, len(ends), SLICE):
            part = ends[at:at + SLICE].tolist()
            # Interned: every version's delta decodes its ids anew, and a row's successors are
            # the same few thousand items version after version: one string each, not one per
            # row that names it in each version a gateway has built.
            ids.extend(sys.intern(blob[a:b].decode("utf-8")) for a, b in zip([int(ends[at - 1]) if at else 0, *part], part))
            yield
        none = np.zeros(0, dtype=np.int64)
        upserted = [ids[i] for i in arrays.get("upserted", none).tolist()]  # a checkpoint before it: a full load
        for c in range(self.channels):
            given = set()
            targets, counts = arrays.get(f"c{c}.targets", none), arrays.get(f"c{c}.counts", none)
            row_ends = arrays.get(f"c{c}.ends", none).tolist()
            loaded: list[Id] = []
            loaded_counts: list[int] = []
            base = 0  # loaded[i] is successor base + i
            for a, degree, start, end in zip(map(ids.__getitem__, arrays.get(f"c{c}.sources", none).tolist()),
                                             arrays.get(f"c{c}.degrees", none).tolist(), [0, *row_ends], row_ends):
                if end > base + len(loaded):  # the next slice of successors, as ids
                    base, stop = start, max(end, start + 2 * SLICE)
                    loaded = list(map(ids.__getitem__, targets[start:stop].tolist()))
                    loaded_counts = counts[start:stop].tolist()
                self._put_row(c, a, loaded[start - base:end - base], loaded_counts[start - base:end - base], degree, keep)
                given.add(a)
                if len(given) % ROWS_PER_STEP == 0:
                    yield
            for a in upserted:
                if a not in given:
                    self._remove_row(c, a)
            yield
        return upserted

    def _put_row(self, channel: int, source: Id, successors: Sequence[Id], counts: Sequence[int], degree: int,
                 keep: int) -> None:
        """A loaded row of `successors` and their `counts`: cut to its `keep` strongest (ties in
        the row's order) and, for a reader (`keep` > 0), read-only and compact (`Successors`,
        never owned: written to, it becomes a Counter), else a Counter this object owns and
        counts on."""
        if 0 < keep < len(successors):
            strongest = heapq.nlargest(keep, zip(successors, counts), key=itemgetter(1))
            successors, counts = [s for s, _ in strongest], [n for _, n in strongest]
        if keep > 0:
            row: Row = Successors.of(successors, counts)
            self._owned[channel].discard(source)
        else:
            row = Counter()
            dict.update(row, zip(successors, counts))  # dict.update: Counter.update would add
            self._owned[channel].add(source)
        self.neighbours[channel][source] = row
        self.degrees[channel][source] = degree
        self._strongest[channel].pop(source, None)

    def _remove_row(self, channel: int, source: Id) -> None:
        self.neighbours[channel].pop(source, None)
        self.degrees[channel].pop(source, None)
        self._owned[channel].discard(source)
        self._strongest[channel].pop(source, None)

    def without(self, sources: Iterable[Id]) -> "TransitionCounts":
        """A new object sharing the rows (Counters) of every source but `sources`."""
        return run_steps(self.without_in_steps(sources))

    def emptied_in_steps(self) -> Steps[None]:
        """Drop every row, `EMPTY_STEP` sources a step: for a table no reader holds any more. Its
        last reference dropped at once, a replaced version's table freed the rows only it held
        (those the next version replaced) in one call: 4-5 ms of a gateway's loop for a Beauty
        version, and as long in a thread, which holds the GIL through a call. The degrees
        (plain ints: 0.1 ms) go with the object."""
        for rows in self.neighbours:
            yield from emptied(rows, EMPTY_STEP)
        for strongest in self._strongest:
            yield from emptied(strongest, EMPTY_STEP)

    def without_in_steps(self, sources: Iterable[Id]) -> Steps["TransitionCounts"]:
        """`without`, a step per channel (a copy of a dict is one C call: 1.3 ms for 100k rows, timeit)."""
        dropped = set(sources)
        out = self.empty_like()
        for c in range(self.channels):
            out.neighbours[c], out.degrees[c] = self.neighbours[c].copy(), self.degrees[c].copy()
            for a in dropped:
                out.neighbours[c].pop(a, None)
                out.degrees[c].pop(a, None)
            yield
        self._owned = [set() for _ in self.neighbours]  # shared with `out` now
        return out
