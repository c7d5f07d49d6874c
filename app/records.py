"""Typed records for user events and catalog changes, with validation that says what is wrong.

Both the gateway and the agents decode through here, so a record is accepted or refused
for the same reason wherever it enters.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from models.errors import PayloadTooLarge, ValidationError

EVENT_TYPES = ("view", "click", "add_to_cart", "purchase", "search", "impression")
CATALOG_OPS = ("upsert", "delete")
MAX_ID_CHARS = 256
MAX_TEXT_CHARS = 2048
MAX_ATTRIBUTES = 64


@dataclass(frozen=True, slots=True)
class UserEvent:
    event_id: str
    user_id: str
    type: str
    ts: float  # seconds since the epoch
    item_id: str | None = None
    query: str | None = None
    position: int | None = None
    request_id: str | None = None

    def to_json(self) -> bytes:
        return orjson.dumps({k: v for k, v in asdict(self).items() if v is not None})


@dataclass(frozen=True, slots=True)
class CatalogChange:
    op: str
    item_id: str
    ts: float
    title: str | None = None
    category: str | None = None
    price: float | None = None
    stock: int | None = None
    attributes: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> bytes:
        return orjson.dumps({k: v for k, v in asdict(self).items() if v is not None})


def load_json(raw: bytes, max_bytes: int) -> Any:
    """Parse bytes as JSON, refusing oversized or undecodable input."""
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"record is {len(raw)} bytes, over the limit of {max_bytes}")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValidationError(f"not valid JSON: {exc}") from None


def decode_event(raw: bytes, max_bytes: int, now: float) -> UserEvent:
    return parse_event(load_json(raw, max_bytes), now)


def decode_catalog(raw: bytes, max_bytes: int, now: float) -> CatalogChange:
    return parse_catalog(load_json(raw, max_bytes), now)


def parse_event(obj: Any, now: float) -> UserEvent:
    """Validate one event object; `now` fills a missing `ts`."""
    _require_object(obj, "event")
    etype = obj.get("type")
    if etype not in EVENT_TYPES:
        raise ValidationError(f"'type' must be one of {', '.join(EVENT_TYPES)}; got {etype!r}")
    item_id = _id(obj, "item_id", required=etype != "search")
    query = _text(obj, "query", required=etype == "search")
    return UserEvent(
        event_id=_id(obj, "event_id", required=True),
        user_id=_id(obj, "user_id", required=True),
        type=etype,
        ts=_ts(obj, now),
        item_id=item_id,
        query=query,
        position=_int(obj, "position", minimum=0),
        request_id=_id(obj, "request_id", required=False),
    )


def parse_catalog(obj: Any, now: float) -> CatalogChange:
    """Validate one catalog change; an upsert needs a title."""
    _require_object(obj, "catalog change")
    op = obj.get("op", "upsert")
    if op not in CATALOG_OPS:
        raise ValidationError(f"'op' must be 'upsert' or 'delete'; got {op!r}")
    attributes = obj.get("attributes", {})
    if not isinstance(attributes, dict) or len(attributes) > MAX_ATTRIBUTES:
        raise ValidationError(f"'attributes' must be an object of at most {MAX_ATTRIBUTES} keys")
    for key, value in attributes.items():
        if not _is_attribute_value(value):
            raise ValidationError(f"attribute {key!r} must be a string, number, bool or list of those")
    price = obj.get("price")
    if price is not None and (not _is_number(price) or price < 0):
        raise ValidationError("'price' must be a non-negative number")
    return CatalogChange(
        op=op,
        item_id=_id(obj, "item_id", required=True),  # type: ignore[arg-type]
        ts=_ts(obj, now),
        title=_text(obj, "title", required=op == "upsert"),
        category=_text(obj, "category", required=False),
        price=float(price) if price is not None else None,
        stock=_int(obj, "stock", minimum=0),
        attributes=attributes,
    )


def _require_object(obj: Any, what: str) -> None:
    if not isinstance(obj, dict):
        raise ValidationError(f"{what} must be a JSON object, got {type(obj).__name__}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_attribute_value(value: Any) -> bool:
    scalar = (str, int, float, bool)
    return isinstance(value, scalar) or (
        isinstance(value, list) and len(value) <= MAX_ATTRIBUTES and all(isinstance(v, scalar) for v in value)
    )


def _id(obj: dict[str, Any], key: str, required: bool) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise ValidationError(f"'{key}' is required")
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # shops often use numeric ids; they name the same thing
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"'{key}' must be a non-empty string or integer")
    if len(value) > MAX_ID_CHARS:
        raise ValidationError(f"'{key}' is longer than {MAX_ID_CHARS} characters")
    return value


def _text(obj: dict[str, Any], key: str, required: bool) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise ValidationError(f"'{key}' is required")
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise ValidationError(f"'{key}' must be a non-empty string")
    if len(value) > MAX_TEXT_CHARS:
        raise ValidationError(f"'{key}' is longer than {MAX_TEXT_CHARS} characters")
    return value


def _int(obj: dict[str, Any], key: str, minimum: int) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValidationError(f"'{key}' must be an integer >= {minimum}")
    return value


def _ts(obj: dict[str, Any], now: float) -> float:
    value = obj.get("ts")
    if value is None:
        return now
    if not _is_number(value) or value < 0:
        raise ValidationError("'ts' must be a non-negative number of seconds since the epoch")
    # Milliseconds are a common mistake; 1e11 s is the year 5138.
    return float(value) / 1000.0 if value > 1e11 else float(value)
