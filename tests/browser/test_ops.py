"""The operations page in Chromium: the stream's figures, the online metric chart, and an
admin rollback that the page sees served."""
from __future__ import annotations

import json
import urllib.request

from tests.browser.conftest import ADMIN_TOKEN, LiveShop, console_errors, screenshot
from tests.browser.webdriver import Driver, wait_for


def text_is(page: Driver, css: str, want: str) -> str:
    return wait_for(lambda: page.text(css) == want and want, 10.0, f"{css} to read {want!r}")


def post_events(shop: LiveShop, n: int) -> None:
    events = [{"event_id": f"ops{len(shop.sink.events) + k}", "user_id": "s9", "type": "view", "item_id": "drill"}
              for k in range(n)]
    request = urllib.request.Request(f"{shop.base}/v1/events", data=json.dumps(events).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 202


def test_the_page_shows_the_stream_and_every_source(page: Driver, shop: LiveShop):
    page.get(f"{shop.base}/ops?every=300")
    text_is(page, "#dead-letters", "0 (gateway 0, worker 0, learner 0)")
    wait_for(lambda: page.script("return document.querySelectorAll('#sources li.up').length") == 3,
             what="gateway, worker and learner reporting")

    def rate_while_events_flow() -> str | None:
        post_events(shop, 5)  # a rate is per refresh: keep events coming until one shows
        text = page.text("#events-rate")
        return text if text not in ("–", "0.0 /s") else None

    rate = wait_for(rate_while_events_flow, what="an event rate")
    assert rate.endswith(" /s") and float(rate.split()[0]) > 0
    text_is(page, "#lag-p95", "25 ms")  # the worker observed 20 ms each: the 25 ms bucket's bound
    assert page.text("#gateway-version") == "none yet"
    assert console_errors(page) == []


def test_the_page_shows_a_version_change_after_an_admin_rollback(page: Driver, shop_with_versions: LiveShop):
    shop = shop_with_versions
    page.get(f"{shop.base}/ops?every=300")
    text_is(page, "#gateway-version", "v3")
    text_is(page, "#learner-version", "v3")
    wait_for(lambda: page.find_all("#chart svg polyline.live"), what="the online metric chart")
    page.type("#token-input", "not-the-token")
    page.click("#admin-form button")
    text_is(page, "#admin-status", "a valid 'Authorization: Bearer <token>' header is required")
    page.type("#token-input", ADMIN_TOKEN)
    page.click("#admin-form button")
    text_is(page, "#admin-status", "Serving v3; held: 1, 2, 3")
    assert page.script("return document.getElementById('version-select').value") == "2"
    page.click("#rollback-button")
    text_is(page, "#gateway-version", "v4")  # the learner serves v2 again as version 4
    wait_for(lambda: "serving version v3 → v4" in page.text("#log"), what="the change in the page's log")
    text_is(page, "#rollbacks", "1")
    assert shop.follower.serving_version == 4 and len(shop.sink.commands) == 1
    page.resize(1200, 1500)
    page.script("window.scrollTo(0, 0)")
    screenshot(page, "ops-after-rollback")
    assert console_errors(page, allow_http_errors=True) == []  # the wrong token's 401
