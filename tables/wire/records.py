"""Typed records for user events and catalog changes, with validation that says what is wrong.

Both the gateway and the agents decode through here, so a record is accepted or refused
for the same reason wherever it enters. A `ts` further ahead than the receiver's bound
(`max_ts`: its wall clock plus `max_clock_skew_s`) is refused: ordering and decay go by event
time, so one far-future record would otherwise move every clock and freeze what it touches.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import orjson

from models.ads.campaigns import Campaign
from models.errors import PayloadTooLarge, ValidationError
from tables.shapes import is_count as _is_index, is_number as _is_number

EVENT_TYPES = ("view", "click", "add_to_cart", "purchase", "search", "impression")
CATALOG_OPS = ("upsert", "delete")
MAX_ID_CHARS = 256
MAX_TEXT_CHARS = 2048
MAX_ATTRIBUTES = 64
MAX_NAMED_KEYS = 5  # unknown keys quoted in a reason, at most
MAX_TOKEN_CHARS = 1200  # an ad token's length, at most (tables/wire/ad_tokens.py)


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
    # A sponsored result's token (tables/wire/ad_tokens.py), on clicks only: the worker
    # verifies it and charges the campaign. Checked here for shape alone; the key is the worker's.
    ad_token: str | None = None

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


@dataclass(frozen=True, slots=True)
class AdClick:
    """What a click with a verified ad token costs: its campaign's price, capped by the budget;
    `token` (tables/wire/ad_tokens.py: `token_id`) is charged once, by the first click carrying it."""

    campaign_id: str
    price: float
    daily_budget: float
    token: str = ""  # empty in forwards written before the rule: those are charged per click


@dataclass(frozen=True, slots=True)
class ItemEvent:
    """An event forwarded by item: what item stats need, and the (partition, offset) of the
    original event, which makes a replayed forward idempotent. A click on a sponsored result
    carries its charge (the ad_spend row of the campaign lives in the item's partition)."""

    item_id: str
    type: str
    ts: float
    src_partition: int
    src_offset: int
    charge: AdClick | None = None

    def to_json(self) -> bytes:
        return orjson.dumps({"type": self.type, "ts": self.ts, "src": [self.src_partition, self.src_offset]})


# Unknown keys are refused rather than dropped: a misspelt "item_ids" or "timestamp" would
# otherwise be accepted as a record without that field. Every producer of the project sends
# exactly these (the records' own `to_json`).
EVENT_KEYS = tuple(f.name for f in fields(UserEvent))
CATALOG_KEYS = tuple(f.name for f in fields(CatalogChange))
ITEM_EVENT_KEYS = ("type", "ts", "src")


def latest_ts(max_skew_s: float) -> float:
    """The latest event time (seconds) a receiver accepts: its own wall clock plus the skew.
    Never a Kafka message timestamp, which whoever produced the record chose."""
    return time.time() + max_skew_s


def load_json(raw: bytes | None, max_bytes: int) -> Any:
    """Parse bytes as JSON, refusing oversized or undecodable input."""
    if raw is None:
        raise ValidationError("not valid JSON: the record has no value (a tombstone)")
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"record is {len(raw)} bytes, over the limit of {max_bytes}")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValidationError(f"not valid JSON: {exc}") from None


def decode_event(raw: bytes | None, max_bytes: int, now: float, max_ts: float = math.inf) -> UserEvent:
    return parse_event(load_json(raw, max_bytes), now, max_ts)


def decode_catalog(raw: bytes | None, max_bytes: int, now: float, max_ts: float = math.inf) -> CatalogChange:
    return parse_catalog(load_json(raw, max_bytes), now, max_ts)


def decode_item_event(key: bytes | None, raw: bytes | None, max_bytes: int, max_ts: float) -> ItemEvent:
    """An item-events record: the item id as the key, `{"type", "ts", "src": [partition, offset]}`."""
    item_id = _key_id(key, "item id")
    obj = load_json(raw, max_bytes)
    _require_object(obj, "item event")
    _only_known_keys(obj, ITEM_EVENT_KEYS, "an item event's")
    etype = obj.get("type")
    if etype not in EVENT_TYPES:
        raise ValidationError(f"'type' must be one of {', '.join(EVENT_TYPES)}; got {etype!r}")
    if obj.get("ts") is None:
        raise ValidationError("'ts' is required")
    src = obj.get("src")
    if not (isinstance(src, list) and len(src) == 2 and all(_is_index(v) for v in src)):
        raise ValidationError("'src' must be [partition, offset], two non-negative integers")
    return ItemEvent(item_id, etype, _ts(obj, 0.0, max_ts), src[0], src[1])


def item_events_json(forwards: list[ItemEvent]) -> bytes:
    """Several forwards in one item-events record, `{"events": [[item, type, ts, partition,
    offset], ...]}`: a worker sends one such record per item partition per batch of events,
    where one record per event cost the item agent a consumed message each. A charged click
    has a 6th element, `[campaign_id, price, daily_budget, token_id]`."""
    return orjson.dumps({"events": [[f.item_id, f.type, f.ts, f.src_partition, f.src_offset] if f.charge is None
                                    else _charged_entry(f, f.charge) for f in forwards]})


def _charged_entry(f: ItemEvent, charge: AdClick) -> list[Any]:
    return [f.item_id, f.type, f.ts, f.src_partition, f.src_offset,
            [charge.campaign_id, charge.price, charge.daily_budget, charge.token]]


def decode_item_events(key: bytes | None, raw: bytes | None, max_bytes: int, max_ts: float) -> list[ItemEvent]:
    """An item-events record: several forwards (`item_events_json`) or one (`decode_item_event`).
    One bad forward refuses the record whole: only a foreign producer writes one."""
    try:
        obj = load_json(raw, max_bytes)
    except ValidationError:
        obj = None
    if not (isinstance(obj, dict) and "events" in obj):
        return [decode_item_event(key, raw, max_bytes, max_ts)]  # refused as one forward is
    _only_known_keys(obj, ("events",), "an item-events batch's")
    entries = obj["events"]
    if not isinstance(entries, list):
        raise ValidationError("'events' must be a list of [item_id, type, ts, partition, offset]")
    return [_forward(entry, i, max_ts) for i, entry in enumerate(entries)]


def _forward(entry: Any, index: int, max_ts: float) -> ItemEvent:
    where = f"events[{index}]"
    if not (isinstance(entry, list) and len(entry) in (5, 6)):
        raise ValidationError(f"{where} must be [item_id, type, ts, partition, offset] and an optional charge")
    item_id, etype, ts, partition, offset = entry[:5]
    if not (isinstance(item_id, str) and item_id.strip() and len(item_id) <= MAX_ID_CHARS):
        raise ValidationError(f"{where}: the item id must be a non-empty string of at most {MAX_ID_CHARS} characters")
    if etype not in EVENT_TYPES:
        raise ValidationError(f"{where}: the type must be one of {', '.join(EVENT_TYPES)}; got {etype!r}")
    if ts is None:
        raise ValidationError(f"{where}: 'ts' is required")
    if not (_is_index(partition) and _is_index(offset)):
        raise ValidationError(f"{where}: partition and offset must be non-negative integers")
    try:
        when = _ts({"ts": ts}, 0.0, max_ts)
    except ValidationError as exc:
        raise ValidationError(f"{where}: {exc.reason}") from None
    charge = _charge(entry[5], where) if len(entry) == 6 else None
    if charge is not None and etype != "click":
        raise ValidationError(f"{where}: only a click carries a charge")
    return ItemEvent(item_id, etype, when, partition, offset, charge)


def _charge(value: Any, where: str) -> AdClick:
    # Three elements: a forward written before tokens were charged once (no token id).
    ok = (isinstance(value, list) and len(value) in (3, 4) and isinstance(value[0], str)
          and value[0].strip() != "" and len(value[0]) <= MAX_ID_CHARS
          and _is_number(value[1]) and value[1] >= 0 and _is_number(value[2]) and value[2] > 0
          and (len(value) == 3 or (isinstance(value[3], str) and len(value[3]) <= MAX_ID_CHARS)))
    if not ok:
        raise ValidationError(f"{where}: the charge must be [campaign_id, price >= 0, daily_budget > 0, token_id]")
    return AdClick(value[0], float(value[1]), float(value[2]), value[3] if len(value) == 4 else "")


def parse_event(obj: Any, now: float, max_ts: float = math.inf) -> UserEvent:
    """Validate one event object; `now` fills a missing `ts`, a `ts` past `max_ts` is refused."""
    _require_object(obj, "event")
    _only_known_keys(obj, EVENT_KEYS, "an event's")
    etype = obj.get("type")
    if etype not in EVENT_TYPES:
        raise ValidationError(f"'type' must be one of {', '.join(EVENT_TYPES)}; got {etype!r}")
    item_id = _id(obj, "item_id", required=etype != "search")
    query = _text(obj, "query", required=etype == "search")
    return UserEvent(
        event_id=_required_id(obj, "event_id"),
        user_id=_required_id(obj, "user_id"),
        type=etype,
        ts=_ts(obj, now, max_ts),
        item_id=item_id,
        query=query,
        position=_int(obj, "position", minimum=0),
        request_id=_id(obj, "request_id", required=False),
        ad_token=_ad_token(obj, etype),
    )


def _ad_token(obj: dict[str, Any], etype: str) -> str | None:
    """A click's ad token, shape only (the worker verifies the signature); refused on other types,
    which are never charged: a token there is a client's mistake worth saying."""
    token = obj.get("ad_token")
    if token is None:
        return None
    if etype != "click":
        raise ValidationError(f"'ad_token' is accepted on clicks only; got it on a {etype!r} event")
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
        raise ValidationError(f"'ad_token' must be a non-empty string of at most {MAX_TOKEN_CHARS} characters")
    return token


def parse_catalog(obj: Any, now: float, max_ts: float = math.inf) -> CatalogChange:
    """Validate one catalog change; an upsert needs a title. `now` and `max_ts` as for events."""
    _require_object(obj, "catalog change")
    _only_known_keys(obj, CATALOG_KEYS, "a catalog change's")
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
        ts=_ts(obj, now, max_ts),
        title=_text(obj, "title", required=op == "upsert"),
        category=_text(obj, "category", required=False),
        price=float(price) if price is not None else None,
        stock=_int(obj, "stock", minimum=0),
        attributes=attributes,
    )


CAMPAIGN_KEYS = tuple(f.name for f in fields(Campaign))
MAX_TARGETS = 64  # keywords, and categories, a campaign may list


def decode_campaign(raw: bytes | None, max_bytes: int) -> Campaign:
    return parse_campaign(load_json(raw, max_bytes))


def parse_campaign(obj: Any) -> Campaign:
    """Validate one campaign: ids, a positive bid and budget, short target lists, start < stop."""
    _require_object(obj, "campaign")
    _only_known_keys(obj, CAMPAIGN_KEYS, "a campaign's")
    start = _epoch_s(obj, "start_ts", 0.0)
    stop = _epoch_s(obj, "stop_ts", math.inf)
    if not start < stop:
        raise ValidationError(f"'start_ts' must be before 'stop_ts'; got {start:.10g} and {stop:.10g}")
    return Campaign(
        campaign_id=_required_id(obj, "campaign_id"),
        item_id=_required_id(obj, "item_id"),
        bid_per_click=_positive(obj, "bid_per_click"),
        daily_budget=_positive(obj, "daily_budget"),
        keywords=_targets(obj, "keywords"),
        categories=_targets(obj, "categories"),
        start_ts=start,
        stop_ts=stop,
    )


def _positive(obj: dict[str, Any], key: str) -> float:
    value = obj.get(key)
    if value is None:
        raise ValidationError(f"'{key}' is required")
    if not _is_number(value) or value <= 0:
        raise ValidationError(f"'{key}' must be a finite number above 0; got {value!r}")
    return float(value)


def _targets(obj: dict[str, Any], key: str) -> tuple[str, ...]:
    value = obj.get(key, [])
    ok = isinstance(value, list) and len(value) <= MAX_TARGETS and all(
        isinstance(v, str) and v.strip() and len(v) <= MAX_ID_CHARS for v in value)
    if not ok:
        raise ValidationError(f"'{key}' must be a list of at most {MAX_TARGETS} non-empty strings "
                              f"of at most {MAX_ID_CHARS} characters")
    return tuple(value)


def _epoch_s(obj: dict[str, Any], key: str, default: float) -> float:
    value = obj.get(key)
    if value is None:
        return default
    if not _is_number(value) or value < 0:
        raise ValidationError(f"'{key}' must be a non-negative number of seconds since the epoch")
    return float(value) / 1000.0 if value > 1e11 else float(value)  # milliseconds, as for 'ts'


def _require_object(obj: Any, what: str) -> None:
    if not isinstance(obj, dict):
        raise ValidationError(f"{what} must be a JSON object, got {type(obj).__name__}")


def _key_id(key: bytes | None, what: str) -> str:
    """A record key that names something (a user, an item): non-empty UTF-8, not too long."""
    try:
        text = key.decode("utf-8") if key is not None else ""
    except UnicodeDecodeError:
        text = ""
    if not text.strip() or len(text) > MAX_ID_CHARS:
        raise ValidationError(f"the key must be the {what}: non-empty UTF-8 of at most {MAX_ID_CHARS} characters")
    return text


def _only_known_keys(obj: dict[str, Any], allowed: tuple[str, ...], whose: str) -> None:
    unknown = [k for k in obj if k not in allowed]
    if unknown:
        named = ", ".join(repr(k[:40]) for k in unknown[:MAX_NAMED_KEYS])
        more = f" and {len(unknown) - MAX_NAMED_KEYS} more" if len(unknown) > MAX_NAMED_KEYS else ""
        raise ValidationError(f"unknown key {named}{more}: {whose} keys must be among {', '.join(allowed)}")


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


def _required_id(obj: dict[str, Any], key: str) -> str:
    value = _id(obj, key, required=True)
    if value is None:  # never: _id raises first; this tells the type checker so
        raise ValidationError(f"'{key}' is required")
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


def _ts(obj: dict[str, Any], now: float, max_ts: float) -> float:
    value = obj.get("ts")
    if value is None:
        # `now` may be a Kafka timestamp, which the producer set: bounded like a sent ts.
        return min(now, max_ts)
    if not _is_number(value) or value < 0:
        raise ValidationError("'ts' must be a non-negative number of seconds since the epoch")
    # Milliseconds are a common mistake; 1e11 s is the year 5138.
    ts = float(value) / 1000.0 if value > 1e11 else float(value)
    if ts > max_ts:
        raise ValidationError(f"'ts' must be at most {max_ts:.0f}, the receiver's clock plus the allowed "
                              f"skew; got {ts:.10g}, {ts - max_ts:.10g} s too far ahead")
    return ts
