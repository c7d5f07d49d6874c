"""Ad tokens already charged, keyed by token id, valued by the (partition, offset) of the click
event that was charged for it and when (tables/wire/ad_tokens.py says what a token is).

An impression is charged once: a later click event carrying the same token (a shopper's second
click on one ad, or a token replayed by a bot or a shop) is counted as a click but not charged.
The position tells a redelivery of the charged click (same position: charged again only if the
spend row lacks it, whose own position check decides) from a replay (another position: refused).
A row matters only while its token can still be charged, and is dropped after `KEEP_S`
(tables/expiry.py).
"""
from __future__ import annotations

from tables.wire.ad_tokens import MAX_AGE_S

NAME = "ad_tokens_charged"
# A token older than MAX_AGE_S is refused when its click is read (agents/user_events.py); the
# charge itself comes later, from the item-events topic. A day more covers that topic's lag
# and the clocks of the two workers, so a row is never dropped while its token could be charged.
KEEP_S = MAX_AGE_S + 24 * 3600.0


def is_replay(charged: list[int] | None, partition: int, offset: int) -> bool:
    return charged is not None and (charged[0], charged[1]) != (partition, offset)

