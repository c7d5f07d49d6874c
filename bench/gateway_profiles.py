"""Gateway memory per shopper: the read model's profiles, against the decoded profile dicts.

Profiles come from the worker's own code (tables.user_profiles.apply_event) over the synthetic
shop (Zipf items, sessions of views, clicks, carts, purchases and searches), are encoded as the
changelog carries them (JSON), then decoded and held two ways in the same run: as the dicts
the changelog decodes to (how the gateway held them before: the baseline) and through
`ReadModel.apply` (what it holds now). Bytes are Python allocations (tracemalloc) of what is
held, divided by shoppers. Target (issue 12): at most 1,024 bytes per shopper.
Last line: {"served_bytes_per_shopper": ..., "dict_bytes_per_shopper": ..., "ratio": ..., "shoppers": ...}
"""
from __future__ import annotations

import argparse
import gc
import itertools
import json
import random
import sys
import tracemalloc
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.gateway.read_model import ReadModel
from app.settings import Settings
from tables import user_profiles
from tables.wire.records import UserEvent

TYPES = ("view", "view", "view", "click", "add_to_cart", "purchase", "search", "impression")


def profiles(shoppers: int, items: int, seed: int, recent_items: int) -> list[tuple[str, bytes]]:
    """(user id, changelog value) of each shopper after a session or a few."""
    rng = random.Random(seed)
    cum_weights = list(itertools.accumulate(1.0 / (r + 1) for r in range(items)))  # Zipf
    ids = [f"B{rng.randrange(10**9):09d}" for _ in range(items)]
    out = []
    for u in range(shoppers):
        profile = user_profiles.empty()
        for offset in range(rng.choice((1, 2, 4, 8, 16, 40))):
            etype = rng.choice(TYPES)
            item = None if etype == "search" else ids[rng.choices(range(items), cum_weights=cum_weights)[0]]
            query = "cordless drill 18v" if etype == "search" else None
            event = UserEvent(event_id=f"e{u}-{offset}", user_id=f"u{u:08d}", type=etype, item_id=item,
                              query=query, ts=1.7e9 + offset)
            profile = user_profiles.apply_event(profile, event, u % 16, offset, recent_items)
        out.append((f"u{u:08d}", orjson.dumps(profile)))
    return out


def held_bytes(build) -> tuple[int, object]:  # type: ignore[no-untyped-def]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    held = build()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return after - before, held


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shoppers", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    settings = Settings()
    records = profiles(args.shoppers, args.items, args.seed, settings.features.recent_items)

    def as_dicts() -> dict[str, object]:
        return {key: orjson.loads(value) for key, value in records}

    def as_served() -> ReadModel:
        model = ReadModel(settings)
        for key, value in records:
            model.apply(user_profiles.NAME, key, orjson.loads(value))
        return model

    dict_bytes, dicts = held_bytes(as_dicts)
    del dicts
    served_bytes, model = held_bytes(as_served)
    n = args.shoppers
    print(json.dumps({"served_bytes_per_shopper": round(served_bytes / n), "dict_bytes_per_shopper": round(dict_bytes / n),
                      "ratio": round(served_bytes / dict_bytes, 3), "shoppers": n, "items": args.items,
                      "target_bytes_per_shopper": 1024}))


if __name__ == "__main__":
    main()
