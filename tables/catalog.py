"""The catalog, keyed by item id: the latest change of each item.

A delete leaves a small tombstone (`deleted: true`) rather than removing the key, so an
older upsert that arrives late cannot bring the item back.

Changes are ordered by their `ts`, so an entry stored with a far-future `ts` (written before
event times were bounded where records enter) would win over every later change for good;
an entry past `max_ts` (the wall clock plus the allowed skew) loses to any valid change.
"""
from __future__ import annotations

import math
from typing import Any, NotRequired, TypedDict, TypeGuard

from tables.wire.records import CatalogChange
from tables.shapes import is_number, is_optional, require

NAME = "catalog"


class Item(TypedDict):
    """A catalog value (the changelog's JSON object): an item, or a tombstone that holds only
    `deleted` (true) and `ts`."""

    ts: float  # event time of the change applied (seconds)
    deleted: NotRequired[bool]
    title: NotRequired[str | None]
    category: NotRequired[str | None]
    price: NotRequired[float | None]
    stock: NotRequired[int | None]
    attributes: NotRequired[dict[str, Any]]


def is_stale(current: Item | None, change: CatalogChange, max_ts: float = math.inf) -> bool:
    """An older change than the one applied (by event time) must not win, unless what is
    applied claims a time past `max_ts` (seconds): then it cannot be trusted to order by."""
    return current is not None and change.ts < current["ts"] <= max_ts


def to_item(change: CatalogChange) -> Item:
    if change.op == "delete":
        return {"deleted": True, "ts": change.ts}
    return {
        "title": change.title,
        "category": change.category,
        "price": change.price,
        "stock": change.stock,
        "attributes": change.attributes,
        "ts": change.ts,
    }


def is_live(item: Item | None) -> TypeGuard[Item]:
    """An item that exists and is not a tombstone (narrows `item` to Item for the type checker)."""
    return item is not None and not item.get("deleted", False)


def public_view(item_id: str, item: Item) -> dict[str, Any]:
    return {"item_id": item_id, **{k: v for k, v in item.items() if k != "ts"}, "updated_ts": item["ts"]}


def validate(value: Any) -> None:
    """Refuse a changelog value that is not a catalog entry (ValidationError says what is wrong)."""
    require(isinstance(value, dict), NAME, "an object")
    require(is_number(value.get("ts")) and value["ts"] >= 0, NAME, "an object whose 'ts' is a number >= 0")
    if value.get("deleted", False) is not False:
        require(value["deleted"] is True, NAME, "an object whose 'deleted' is a boolean")
        return
    for key in ("title", "category"):
        require(is_optional(value.get(key), str), NAME, f"an object whose '{key}' is a string or null")
    price = value.get("price")
    require(price is None or is_number(price), NAME, "an object whose 'price' is a number or null")
    require(is_optional(value.get("stock"), int), NAME, "an object whose 'stock' is an integer or null")
    require(isinstance(value.get("attributes", {}), dict), NAME, "an object whose 'attributes' is an object")
