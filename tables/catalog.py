"""The catalog, keyed by item id: the latest change of each item.

A delete leaves a small tombstone (`deleted: true`) rather than removing the key, so an
older upsert that arrives late cannot bring the item back.
"""
from __future__ import annotations

from typing import Any

from app.records import CatalogChange

NAME = "catalog"
Item = dict[str, Any]


def is_stale(current: Item | None, change: CatalogChange) -> bool:
    """An older change than the one applied (by event time) must not win."""
    return current is not None and change.ts < current["ts"]


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


def is_live(item: Item | None) -> bool:
    return item is not None and not item.get("deleted", False)


def public_view(item_id: str, item: Item) -> dict[str, Any]:
    return {"item_id": item_id, **{k: v for k, v in item.items() if k != "ts"}, "updated_ts": item["ts"]}
