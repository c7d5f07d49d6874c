"""Ad tokens: what a gateway charged for a sponsored slot, signed, carried by the click.

A gateway that shows a sponsored item puts a token in the result (`ad_token`): campaign,
item, the price the auction set (generalised second price) and when. The shop sends it back
on the click event, and the worker charges the campaign that price once per impression: the
first click event carrying a token is charged, later ones with the same token are clicks, not
charges (tables/charged_tokens.py), so a replayed token cannot drain a budget
(tables/ad_spend.py). Signed with the deployment's HMAC key (tables/wire/updates.py:
`signing_key`), so a shop or a shopper cannot name its own price, another campaign or another
item; a token older than `MAX_AGE_S` is refused, so old pages do not charge forever.

Format (ASCII, in an event's JSON):
`v1.<campaign_id hex>.<item_id hex>.<price in millionths>.<ts in ms>.<daily budget in millionths>.<hmac>`.
"""
from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass

from models.errors import ValidationError

MAX_AGE_S = 24 * 3600.0  # a click on a page shown more than a day ago is not charged
_DOMAIN = b"streamrank-ad-token\0"
_MAX_CHARS = 1200


@dataclass(frozen=True, slots=True)
class AdCharge:
    campaign_id: str
    item_id: str
    price: float  # what one click on this impression costs the campaign
    ts: float  # when the gateway served it (seconds)
    daily_budget: float  # the campaign's budget then: the worker caps spend without a campaign lookup


class TokenMac:
    """HMAC-SHA256 (RFC 2104) of a token's body under one key, the domain prefix included, with
    the key's padded inner and outer hash states made once: a gateway signs every ad it shows,
    and `hmac.new` pads and hashes the key again each time (4.7 us a token here, this 1.9)."""

    def __init__(self, key: bytes) -> None:
        block = hashlib.sha256().block_size
        padded = (hashlib.sha256(key).digest() if len(key) > block else key).ljust(block, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in padded))
        self._inner.update(_DOMAIN)
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in padded))

    def hexdigest(self, body: str) -> str:
        inner = self._inner.copy()
        inner.update(body.encode())
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()

    def sign(self, charge: AdCharge) -> str:
        return self.sign_with(token_head(charge.campaign_id, charge.item_id, charge.daily_budget), charge.price,
                              charge.ts)

    def sign_with(self, head: TokenHead, price: float, ts: float) -> str:
        """The token of a charge whose campaign, item and budget `head` holds (a gateway keeps a
        campaign's head: most of a token's text is the same on every page it is shown on)."""
        if not 0 <= price < math.inf:  # NaN fails too
            raise ValueError(f"an ad price must be a finite amount >= 0; got {price!r}")
        body = f"{head[0]}{round(price * 1e6)}.{round(ts * 1e3)}.{head[1]}"
        return f"{body}.{self.hexdigest(body)}"


TokenHead = tuple[str, int]  # "v1.<campaign_id hex>.<item_id hex>.", the daily budget in millionths


def token_head(campaign_id: str, item_id: str, daily_budget: float) -> TokenHead:
    """The parts of a token that are the same on every page a campaign is shown on."""
    if not 0 <= daily_budget < math.inf:  # NaN fails too
        raise ValueError(f"an ad daily_budget must be a finite amount >= 0; got {daily_budget!r}")
    return f"v1.{campaign_id.encode().hex()}.{item_id.encode().hex()}.", round(daily_budget * 1e6)


def _mac(key: bytes, body: str) -> str:
    return hmac.new(key, _DOMAIN + body.encode(), hashlib.sha256).hexdigest()


def sign_token(key: bytes, charge: AdCharge) -> str:
    return TokenMac(key).sign(charge)


def token_id(token: str) -> str:
    """A verified token's identity for the once-per-impression rule: its signature's first 128 bits."""
    return token.rsplit(".", 1)[-1][:32]


def verify_token(key: bytes, token: object, item_id: str | None, now: float) -> AdCharge:
    """The charge a token stands for; ValidationError (with the reason) when it is forged,
    malformed, for another item than the click's, from the future or too old."""
    if not isinstance(token, str) or len(token) > _MAX_CHARS:
        raise ValidationError(f"'ad_token' must be a string of at most {_MAX_CHARS} characters")
    parts = token.split(".")
    if len(parts) != 7 or parts[0] != "v1":
        raise ValidationError("'ad_token' is not a v1 ad token")
    body, mac = ".".join(parts[:6]), parts[6]
    if not hmac.compare_digest(mac, _mac(key, body)):
        raise ValidationError("'ad_token' has a bad signature")
    try:
        charge = AdCharge(bytes.fromhex(parts[1]).decode(), bytes.fromhex(parts[2]).decode(),
                          int(parts[3]) / 1e6, int(parts[4]) / 1e3, int(parts[5]) / 1e6)
    except ValueError:  # UnicodeDecodeError is one
        raise ValidationError("'ad_token' is malformed") from None
    if item_id is not None and charge.item_id != item_id:
        raise ValidationError("'ad_token' is for another item than the event's")
    if charge.ts > now + 300 or now - charge.ts > MAX_AGE_S:
        raise ValidationError("'ad_token' is expired or from the future")
    return charge
