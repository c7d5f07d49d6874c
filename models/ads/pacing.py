"""Daily budgets: spread spend over the day, and never charge past the budget by more than one click.

Pacing is a throttle: before each auction a campaign enters with a probability that falls as
its spend gets ahead of an even spread of the budget over the (UTC) day, so a popular item's
budget does not run out by breakfast and leave it off every page after. The throttle needs
only the campaign's spend so far and the clock, which the spend table and the request hold.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

DAY_S = 86_400.0


@dataclass(frozen=True)
class PacingConfig:
    lead: float = 0.05  # share of the day a campaign may spend ahead of the even line, unthrottled
    ramp: float = 0.1  # ahead of the line by this share of the budget, it sits auctions out

    def __post_init__(self) -> None:
        if not (0 <= self.lead <= 1 and self.ramp > 0):
            raise ValueError(f"need 0 <= lead <= 1 and ramp > 0, got lead={self.lead}, ramp={self.ramp}")


def day_start(ts: float) -> float:
    """The start (seconds since the epoch) of the UTC day holding `ts`: budgets are per such day."""
    return math.floor(ts / DAY_S) * DAY_S


def day_fraction(ts: float) -> float:
    """Share of the UTC day elapsed at `ts`, 0..1."""
    return (ts - day_start(ts)) / DAY_S


def pacing_probability(spend: float, budget: float, elapsed: float, config: PacingConfig = PacingConfig()) -> float:
    """Probability of entering an auction: 1 while today's spend is at or behind
    budget x (elapsed + lead), falling linearly to 0 at ramp x budget ahead of it; 0 once spent."""
    if not spend < budget:
        return 0.0
    ahead = spend - budget * min(1.0, max(elapsed, 0.0) + config.lead)
    if ahead <= 0:
        return 1.0
    return max(0.0, 1.0 - ahead / (config.ramp * budget))


def enters_auction(probability: float, draw: float) -> bool:
    """The throttle's decision for a uniform `draw` in [0, 1) (the caller's generator, so it replays)."""
    return draw < probability


def can_charge(spend: float, budget: float) -> bool:
    """A click is charged only while spend is under the budget: one click at most can pass it."""
    return spend < budget


def charge_for_click(spend: float, budget: float, price: float) -> float:
    """What a click costs the campaign now: its second price while it can be charged, else nothing
    (a click on an ad shown just before the budget ran out is free)."""
    return price if can_charge(spend, budget) else 0.0
