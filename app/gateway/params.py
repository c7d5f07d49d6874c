"""Query-string and path parameters parsed with a clear 400 on a bad value.

Every id and text a client sends is bounded here, as the records' fields are: they become
keys of caches and parts of answers, and a client must not choose how large those get.
"""
from __future__ import annotations

import math

from aiohttp import web

from tables.wire.records import MAX_ID_CHARS, MAX_TEXT_CHARS
from models.errors import ValidationError

ECHO_CHARS = 40  # of a bad value, quoted back in the error


def int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    value = _number(request, name, int)
    if value is None:
        return default
    if not lo <= value <= hi:
        raise ValidationError(f"'{name}' must be between {lo} and {hi}")
    return int(value)


def float_param(request: web.Request, name: str) -> float | None:
    """A finite non-negative number, or None when absent."""
    value = _number(request, name, float)
    if value is not None and not (math.isfinite(value) and value >= 0):
        raise ValidationError(f"'{name}' must be a finite non-negative number")
    return value


def id_param(request: web.Request, name: str) -> str | None:
    """An id from the query string (None when absent or empty), at most MAX_ID_CHARS long."""
    return text_param(request, name, MAX_ID_CHARS)


def text_param(request: web.Request, name: str, max_chars: int = MAX_TEXT_CHARS) -> str | None:
    """A text from the query string (None when absent or empty), at most `max_chars` long."""
    value = request.query.get(name) or None
    if value is not None:
        _check_length(name, value, max_chars)
    return value


def path_id(request: web.Request, name: str) -> str:
    """An id from the path, at most MAX_ID_CHARS long."""
    value = request.match_info[name]
    _check_length(name, value, MAX_ID_CHARS)
    return value


def _check_length(name: str, value: str, max_chars: int) -> None:
    if len(value) > max_chars:
        raise ValidationError(f"'{name}' is longer than {max_chars} characters")


def _number(request: web.Request, name: str, kind: type) -> float | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        return kind(raw)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        shown = raw if len(raw) <= ECHO_CHARS else raw[:ECHO_CHARS] + "..."
        raise ValidationError(f"'{name}' must be {what}, got {shown!r}") from None
