"""Ad tokens: a gateway's signed charge for a sponsored slot, checked by the worker."""
import pytest

from models.errors import ValidationError
from tables.wire.ad_tokens import MAX_AGE_S, AdCharge, sign_token, token_id, verify_token

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
