"""The spend table's rules: a click charged once per source position, per UTC day, never more
than one click past the budget; and the campaigns table's checks."""
from __future__ import annotations

import pytest

from models.ads.campaigns import Campaign
from models.ads.pacing import DAY_S
from models.errors import ValidationError
from tables import ad_spend, campaigns

DAY = 20_000 * DAY_S  # a UTC day start
NOON = DAY + DAY_S / 2


def charge_all(prices: list[float], budget: float, ts: float = NOON) -> ad_spend.Spend:
    row = None
    for offset, price in enumerate(prices):
        row, _, _ = ad_spend.apply_click(row, price, budget, ts, 0, offset)
    assert row is not None
    return row


def test_a_click_is_charged_its_price_and_marks_its_position():
    row, amount, refusal = ad_spend.apply_click(None, 0.42, 10.0, NOON, 3, 17)
    assert (amount, refusal) == (0.42, None)
    assert row == {"day": DAY, "spend": 0.42, "clicks": 1, "refused": 0, "src": {"3": 17}}
    assert ad_spend.already_applied(row, 3, 17) and ad_spend.already_applied(row, 3, 5)
    assert not ad_spend.already_applied(row, 3, 18) and not ad_spend.already_applied(row, 2, 0)
    ad_spend.validate(row)


def test_spend_passes_the_budget_by_at_most_one_click():
    row = charge_all([0.3] * 10, budget=1.0)
    # 0.3, 0.6, 0.9 under the budget, the 4th crosses it (1.2), the rest are refused.
    assert row["spend"] == 1.2 and row["clicks"] == 4 and row["refused"] == 6
    assert row["spend"] - 1.0 < 0.3


def test_a_refused_click_still_marks_its_position():
    row = charge_all([2.0], budget=1.0)
    new, amount, refusal = ad_spend.apply_click(row, 0.5, 1.0, NOON, 0, 1)
    assert (amount, refusal) == (0.0, "budget")
    assert new["refused"] == 1 and new["src"] == {"0": 1} and new["spend"] == 2.0


def test_a_new_day_starts_spend_again():
    row = charge_all([0.6, 0.6], budget=1.0)
    assert row["spend"] == 1.2
    tomorrow = NOON + DAY_S
    new, amount, refusal = ad_spend.apply_click(row, 0.5, 1.0, tomorrow, 0, 9)
    assert (amount, refusal) == (0.5, None)
    assert new == {"day": DAY + DAY_S, "spend": 0.5, "clicks": 1, "refused": 0, "src": {"0": 9}}
    assert ad_spend.spent_on(new, tomorrow) == 0.5 and ad_spend.spent_on(new, NOON) == 0.0


def test_a_click_of_an_earlier_day_is_not_charged_to_today():
    row = charge_all([0.5], budget=1.0, ts=NOON + DAY_S)
    new, amount, refusal = ad_spend.apply_click(row, 0.5, 1.0, NOON, 1, 4)
    assert (amount, refusal) == (0.0, "late")
    assert new["spend"] == 0.5 and new["day"] == DAY + DAY_S and new["src"] == {"0": 0, "1": 4}


def test_spend_does_not_depend_on_the_order_of_clicks():
    prices = [0.1, 0.2, 0.3, 0.7, 0.05, 0.013] * 5
    assert charge_all(prices, 100.0)["spend"] == charge_all(prices[::-1], 100.0)["spend"] == round(sum(prices), 6)


def test_the_input_row_is_not_changed():
    row = charge_all([0.5], budget=1.0)
    before = {**row, "src": dict(row["src"])}
    ad_spend.apply_click(row, 0.5, 1.0, NOON, 0, 1)
    assert row == before


@pytest.mark.parametrize("value", [
    [], {"day": DAY, "spend": -1.0, "clicks": 0, "refused": 0, "src": {}},
    {"day": DAY, "spend": 1.0, "clicks": 1.5, "refused": 0, "src": {}},
    {"day": DAY, "spend": 1.0, "clicks": 1, "refused": 0, "src": {"0": -1}},
    {"day": DAY, "spend": float("nan"), "clicks": 1, "refused": 0, "src": {}},
])
def test_spend_rows_of_another_shape_are_refused(value):
    with pytest.raises(ValidationError, match="ad_spend value"):
        ad_spend.validate(value)


def test_campaign_values_and_their_item():
    c = Campaign("c1", "i1", bid_per_click=0.5, daily_budget=3.0, keywords=("drill",))
    value = campaigns.to_value(c)
    campaigns.validate(value)
    assert campaigns.from_value(value) == c
    campaigns.check_update(value, Campaign("c1", "i1", 0.9, 5.0))  # bid and budget may change
    with pytest.raises(ValidationError, match="its item cannot change"):
        campaigns.check_update(value, Campaign("c1", "i2", 0.5, 3.0))
    with pytest.raises(ValidationError, match="campaigns value must be a campaign: 'bid_per_click'"):
        campaigns.validate({**value, "bid_per_click": 0})
