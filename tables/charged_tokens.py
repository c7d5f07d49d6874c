"""Ad tokens already charged, keyed by token id, valued by the (partition, offset) of the click
event that was charged for it (tables/wire/ad_tokens.py says what a token is).

An impression is charged once: a later click event carrying the same token (a shopper's second
click on one ad, or a token replayed by a bot or a shop) is counted as a click but not charged.
The position tells a redelivery of the charged click (same position: charged again only if the
spend row lacks it, whose own position check decides) from a replay (another position: refused).
A row matters only while its token can still be charged (a day, `MAX_AGE_S`).
"""
from __future__ import annotations

NAME = "ad_tokens_charged"


def is_replay(charged: list[int] | None, partition: int, offset: int) -> bool:
    return charged is not None and (charged[0], charged[1]) != (partition, offset)

