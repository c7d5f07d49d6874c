"""Ad tokens: a gateway's signed charge for a sponsored slot, checked by the worker."""
import hashlib
import hmac

import pytest

from models.errors import ValidationError
from tables.wire.ad_tokens import MAX_AGE_S, AdCharge, TokenMac, sign_token, token_id, verify_token

KEY = b"k" * 32
NOW = 1_800_000_000.0


def test_a_signed_token_round_trips_for_its_item():
    charge = AdCharge("camp-ü", "item/1", 0.37, NOW, 50.0)
    assert verify_token(KEY, sign_token(KEY, charge), "item/1", NOW + 5) == charge


def test_a_token_id_names_one_impression():
    first = sign_token(KEY, AdCharge("c1", "i1", 0.5, NOW, 10.0))
    again = sign_token(KEY, AdCharge("c1", "i1", 0.5, NOW, 10.0))
    later = sign_token(KEY, AdCharge("c1", "i1", 0.5, NOW + 1, 10.0))
    assert token_id(first) == token_id(again) and len(token_id(first)) == 32
    assert token_id(later) != token_id(first)


@pytest.mark.parametrize("mutate, reason", [
    (lambda t: t.replace("v1.", "v2.", 1), "not a v1 ad token"),
    (lambda t: t[:-1] + ("0" if t[-1] != "0" else "1"), "bad signature"),
    (lambda t: ".".join(t.split(".")[:3] + ["1", *t.split(".")[4:]]), "bad signature"),  # a price of one's own
    (lambda t: t + ".x", "not a v1 ad token"),
    (lambda t: 42, "must be a string"),
    (lambda t: "x" * 5000, "must be a string of at most"),
])
def test_forged_or_malformed_tokens_are_refused(mutate, reason):
    token = sign_token(KEY, AdCharge("c1", "i1", 0.5, NOW, 10.0))
    with pytest.raises(ValidationError, match=reason):
        verify_token(KEY, mutate(token), "i1", NOW)


def test_a_token_for_another_item_another_key_or_too_old_is_refused():
    token = sign_token(KEY, AdCharge("c1", "i1", 0.5, NOW, 10.0))
    with pytest.raises(ValidationError, match="another item"):
        verify_token(KEY, token, "i2", NOW)
    with pytest.raises(ValidationError, match="bad signature"):
        verify_token(b"other" * 8, token, "i1", NOW)
    with pytest.raises(ValidationError, match="expired"):
        verify_token(KEY, token, "i1", NOW + MAX_AGE_S + 1)
    with pytest.raises(ValueError):
        sign_token(KEY, AdCharge("c1", "i1", float("nan"), NOW, 10.0))


@pytest.mark.parametrize("key", [b"", b"k" * 32, b"\x00\xff" * 32, b"long" * 40])  # empty, short, a block, past one
def test_the_gateways_token_mac_is_rfc_2104_hmac(key):
    """TokenMac keeps the key's padded hash states; it must sign as the standard library's HMAC,
    which the worker verifies with."""
    charge = AdCharge("c1", "i/ü", 0.123456, NOW, 99.5)
    mac = TokenMac(key)
    token = mac.sign(charge)
    assert verify_token(key, token, "i/ü", NOW) == charge
    body = token.rsplit(".", 1)[0]
    assert token.rsplit(".", 1)[1] == hmac.new(key, b"streamrank-ad-token\0" + body.encode(), hashlib.sha256).hexdigest()
    assert mac.sign(charge) == token == sign_token(key, charge)  # the states are copied, not used up


@pytest.mark.parametrize("price, budget, named", [(float("nan"), 10.0, "price"), (-0.01, 10.0, "price"),
                                                  (float("inf"), 10.0, "price"), (0.5, float("inf"), "daily_budget"),
                                                  (0.5, float("nan"), "daily_budget")])
def test_a_charge_that_is_not_a_finite_amount_is_never_signed(price, budget, named):
    with pytest.raises(ValueError, match=f"an ad {named} must be a finite amount"):
        TokenMac(KEY).sign(AdCharge("c1", "i1", price, NOW, budget))
