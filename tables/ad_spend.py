"""Ad spend, keyed by campaign id: what the campaign has been charged today, counted from clicks.

A row lives in the partition of the campaign's item (the item-events partition its clicks
arrive on), so one agent instance owns it and no click is counted by two. Like item stats it
keeps the last source position applied per events partition (`src`), so a click redelivered
after a crash, or forwarded again, is charged once. Spend is per UTC day (`day`, the day's
start in seconds): the first click of a later day starts it again at 0. A click is charged
only while the day's spend is under the budget (`models/ads/pacing.py:charge_for_click`), so
spend passes the budget by less than one click; one not charged counts in `refused`.

Amounts are kept rounded to millionths, the unit of an ad token's price, so a day's spend is
the same whatever order its clicks from several events partitions arrive in.
"""
from __future__ import annotations

from typing import Any, Literal, TypedDict

from models.ads.pacing import charge_for_click, day_start
from tables.shapes import is_count, is_counts, is_number, require

NAME = "ad_spend"

# Why a click was not charged: the day's budget was spent, or it was made on an earlier day
# than the row's (its day's spend is no longer kept, and charging it to today's would be wrong).
Refusal = Literal["budget", "late"]


class Spend(TypedDict):
    """An ad_spend value (the changelog's JSON object)."""

    day: float  # start of the UTC day counted (seconds since the epoch)
    spend: float  # charged that day
    clicks: int  # clicks charged that day
    refused: int  # clicks not charged that day (budget spent, or late)
    src: dict[str, int]  # events partition (as text) -> offset of the last click applied


def empty(day: float = 0.0) -> Spend:
    return {"day": day, "spend": 0.0, "clicks": 0, "refused": 0, "src": {}}


def already_applied(row: Spend, src_partition: int, src_offset: int) -> bool:
    last = row["src"].get(str(src_partition))
    return last is not None and src_offset <= last


def apply_click(row: Spend | None, price: float, budget: float, ts: float, src_partition: int,
                src_offset: int) -> tuple[Spend, float, Refusal | None]:
    """The row with one click at `ts` applied, what it was charged and why not (None when it was);
    the input is not changed. Callers check `already_applied` first."""
    current = row or empty()
    day = day_start(ts)
    src = {**current["src"], str(src_partition): src_offset}
    if day > current["day"]:
        current = empty(day)  # a new day: yesterday's spend does not count against today's budget
    elif day < current["day"]:
        return {**current, "refused": current["refused"] + 1, "src": src}, 0.0, "late"
    amount = charge_for_click(current["spend"], budget, price)
    if amount <= 0 and price > 0:
        return {**current, "refused": current["refused"] + 1, "src": src}, 0.0, "budget"
    return {"day": day, "spend": round(current["spend"] + amount, 6), "clicks": current["clicks"] + 1,
            "refused": current["refused"], "src": src}, amount, None


def spent_on(row: Spend | None, ts: float) -> float:
    """The spend counted for the UTC day holding `ts` (0 when the row is of another day)."""
    return spent_on_day(row, day_start(ts))


def spent_on_day(row: Spend | None, day: float) -> float:
    """The spend counted for the UTC day starting at `day` (0 when the row is of another day)."""
    return row["spend"] if row is not None and row["day"] == day else 0.0


def validate(value: Any) -> None:
    """Refuse a changelog value that is not a spend row (ValidationError says what is wrong)."""
    require(isinstance(value, dict), NAME, "an object")
    for key in ("day", "spend"):
        require(is_number(value.get(key)) and value[key] >= 0, NAME, f"an object whose '{key}' is a number >= 0")
    for key in ("clicks", "refused"):
        require(is_count(value.get(key)), NAME, f"an object whose '{key}' is an integer >= 0")
    require(is_counts(value.get("src")), NAME, "an object whose 'src' maps partitions to offsets")
