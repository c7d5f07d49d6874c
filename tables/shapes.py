"""Checks that a table value read back from its changelog has the shape its module writes.

The gateway reads the changelogs without Faust; a value of the wrong shape must be refused
whole before it reaches the read model, where a later read would raise on it.
"""
from __future__ import annotations

import math
from typing import Any

from models.errors import ValidationError


def require(ok: bool, table: str, what: str) -> None:
    """Raise, saying e.g. "a catalog value must be an object whose 'ts' is a number", unless `ok`."""
    if not ok:
        raise ValidationError(f"a {table} value must be {what}")


def is_number(value: Any) -> bool:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def is_counts(value: Any) -> bool:
    """{name: non-negative int}, as `counts` and `src` (partition -> offset) are kept."""
    return isinstance(value, dict) and all(is_count(v) for v in value.values())


def is_optional(value: Any, kind: type | tuple[type, ...]) -> bool:
    return value is None or (isinstance(value, kind) and not isinstance(value, bool))
