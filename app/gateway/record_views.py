"""A held record's view answers the reads the changelog's dict answered (see profiles.py, held_stats.py)."""
from __future__ import annotations

from typing import Any, ClassVar


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
