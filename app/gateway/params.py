"""Query-string parameters parsed with a clear 400 on a bad value."""
from __future__ import annotations

from aiohttp import web

from models.errors import ValidationError


def int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    value = _number(request, name, int)
    if value is None:
        return default
    if not lo <= value <= hi:
        raise ValidationError(f"'{name}' must be between {lo} and {hi}")
    return int(value)


def float_param(request: web.Request, name: str) -> float | None:
    """A non-negative number, or None when absent."""
    value = _number(request, name, float)
    if value is not None and (value != value or value < 0):
        raise ValidationError(f"'{name}' must be a non-negative number")
    return value


def _number(request: web.Request, name: str, kind: type) -> float | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        return kind(raw)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise ValidationError(f"'{name}' must be {what}, got {raw!r}") from None
