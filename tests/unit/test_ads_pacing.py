"""Budget pacing: the throttle follows the day, and charges pass a budget by at most one click."""
import numpy as np
import pytest

from models.ads.pacing import (
    DAY_S,
    PacingConfig,
    can_charge,
    charge_for_click,
    day_fraction,
    day_start,
    enters_auction,
    pacing_probability,
)

CONFIG = PacingConfig(lead=0.05, ramp=0.1)


def test_behind_the_even_line_a_campaign_always_enters():
    assert pacing_probability(spend=0.0, budget=10.0, elapsed=0.0, config=CONFIG) == 1.0
    assert pacing_probability(spend=4.0, budget=10.0, elapsed=0.5, config=CONFIG) == 1.0


def test_ahead_of_the_line_the_probability_falls_to_zero():
    # allowed at mid-day: 10 * (0.5 + 0.05) = 5.5; the ramp is 1.0 wide
    assert pacing_probability(6.0, 10.0, 0.5, CONFIG) == pytest.approx(0.5)
    assert pacing_probability(6.5, 10.0, 0.5, CONFIG) == 0.0
    assert pacing_probability(9.0, 10.0, 0.5, CONFIG) == 0.0


def test_a_spent_budget_never_enters():
    assert pacing_probability(10.0, 10.0, 1.0, CONFIG) == 0.0
    assert pacing_probability(12.0, 10.0, 0.99, CONFIG) == 0.0


def test_enters_auction_follows_the_draw():
    assert enters_auction(0.5, 0.49) and not enters_auction(0.5, 0.5) and not enters_auction(0.0, 0.0)


def test_days_are_utc_days():
    ts = 1_767_225_600.0 + 6 * 3600  # 2026-01-01 06:00 UTC
    assert day_start(ts) == 1_767_225_600.0
    assert day_fraction(ts) == pytest.approx(0.25)


def test_charges_pass_the_budget_by_at_most_one_click():
    rng = np.random.default_rng(3)
    for _ in range(200):
        budget, spend, bid = float(rng.uniform(0.5, 20)), 0.0, float(rng.uniform(0.05, 3))
        for price in rng.uniform(0.05, bid, 100):  # every price is at most the bid
            spend += charge_for_click(spend, budget, float(price))
        assert spend <= budget + bid
        assert not can_charge(spend, budget) or spend < budget
    assert charge_for_click(9.9, 10.0, 2.0) == 2.0 and charge_for_click(10.0, 10.0, 2.0) == 0.0


def test_a_paced_day_spreads_spend_and_stays_within_one_click():
    rng = np.random.default_rng(5)
    budget, price, spend = 20.0, 1.0, 0.0
    spend_by_hour = []
    for n in range(2400):  # a popular ad: a click in half the auctions it enters
        elapsed = n / 2400
        if enters_auction(pacing_probability(spend, budget, elapsed, CONFIG), rng.random()) and rng.random() < 0.5:
            spend += charge_for_click(spend, budget, price)
        if n % 100 == 99:
            spend_by_hour.append(spend)
    assert spend <= budget + price
    assert spend_by_hour[5] <= budget * (6 / 24 + CONFIG.lead + CONFIG.ramp) + price  # not spent by breakfast
    assert spend_by_hour[-1] >= budget * 0.9  # but spent by the end of the day


def test_bad_pacing_configs_are_refused():
    with pytest.raises(ValueError):
        PacingConfig(ramp=0.0)
    with pytest.raises(ValueError):
        PacingConfig(lead=1.5)
    assert DAY_S == 86_400.0
