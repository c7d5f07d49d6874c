"""A held record's view answers the reads the changelog's dict answered (see profiles.py, held_stats.py)."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from tables.wire.records import EVENT_TYPES

# Both records hold their counts as uint32, one per event type in EVENT_TYPES order.
TYPE_INDEX = {t: i for i, t in enumerate(EVENT_TYPES)}
MAX_COUNT = 2**32 - 1


class DictReads:
    """`view[field]` and `view.get(field)` for the fields in FIELDS (attributes or properties):
    the code shared with the worker (tables/) reads a view as it reads the dict."""

    __slots__ = ()
    FIELDS: ClassVar[frozenset[str]] = frozenset()

    def __getitem__(self, key: str) -> Any:
        if key not in self.FIELDS:
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key) if key in self.FIELDS else default


def counts_by_type(counts: Iterable[int]) -> dict[str, int]:
    """A record's counts (EVENT_TYPES order) as the dict's `counts`: the types seen, by name."""
    return {t: n for t, n in zip(EVENT_TYPES, counts) if n}
