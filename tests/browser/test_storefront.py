"""The storefront in Chromium: search, a shopper's recommendations following their clicks,
carts and purchases, and the API's own messages for bad input or a gateway that is down."""
from __future__ import annotations

from tests.browser.conftest import API_KEY, LiveShop, console_errors, screenshot
from tests.browser.webdriver import Driver, wait_for

LIST_IDS = "return [...document.querySelectorAll(arguments[0] + ' li')].map(li => li.dataset.itemId)"


def ids(page: Driver, css: str) -> list[str]:
    return page.script(LIST_IDS, css)


def search(page: Driver, query: str) -> None:
    page.type("#search-input", query)
    page.click("#search-form button")


def message(page: Driver, css: str, contains: str) -> str:
    def said() -> str | None:
        text = page.text(css)
        return text if contains in text else None
    return wait_for(said, 10.0, f"{css} to say {contains!r}")


def test_search_shows_titles_prices_and_why(page: Driver, shop: LiveShop):
    page.get(f"{shop.base}/?shopper=pat")
    search(page, "drill")
    wait_for(lambda: "drill" in ids(page, "#results"), what="search results")
    first = page.text('#results li[data-item-id="drill"]')
    assert "Cordless drill 20V" in first and "$129.00" in first and "lexical" in first
    assert page.text("#search-status").endswith("model bm25")
    wait_for(lambda: ids(page, "#trending"), what="trending items")
    assert page.text('#trending li[data-item-id="gloves"]') == "Leather work gloves\n$12.00"
    # s1 took the drill, then the bits: for them the bits outrank the drill, as for nobody else
    page.type("#shopper-input", "s1")
    page.click("#shopper-form button")
    message(page, "#recs-heading", "Recommended for s1")
    search(page, "drill")
    wait_for(lambda: ids(page, "#results") == ["bits", "drill"], what="the personal order")
    assert "personal" in page.text('#results li[data-item-id="bits"]')
    assert "personal" not in page.text('#results li[data-item-id="drill"]')
    screenshot(page, "shop-search")
    assert console_errors(page) == []


def test_a_click_on_a_result_changes_the_shoppers_recommendations(page: Driver, shop: LiveShop):
    page.get(f"{shop.base}/?shopper=pat")
    before = wait_for(lambda: ids(page, "#recs"), what="the shopper's recommendations")
    assert before[0] == "roller"  # pat looked at paint; people who did took the roller next
    search(page, "garden hose")
    wait_for(lambda: "hose" in ids(page, "#results"), what="search results")
    page.click('#results li[data-item-id="hose"] button.link')
    after = wait_for(lambda: (now := ids(page, "#recs")) != before and now, what="the recommendations to change")
    assert after[0] == "nozzle", after  # people who took the hose took the nozzle next
    click = shop.sink.events[-1]
    assert (click.user_id, click.type, click.item_id, click.query, click.position) == ("pat", "click", "hose", "garden hose", 0)
    assert "Garden hose 50 ft" in page.text("#product-title")
    message(page, "#recs-status", "Updated")
    page.click("#add-to-cart")
    message(page, "#product-status", "Added to the cart")
    page.click("#buy")
    message(page, "#product-status", "Bought")
    assert [(e.type, e.item_id) for e in shop.sink.events[-2:]] == [("add_to_cart", "hose"), ("purchase", "hose")]
    wait_for(lambda: "hose" not in ids(page, "#recs") and ids(page, "#recs"), what="the bought item to leave the list")
    wait_for(lambda: ids(page, "#similar"), what="similar items")
    screenshot(page, "shop-after-purchase")
    assert console_errors(page) == []


def test_bad_input_shows_the_apis_message(page: Driver, shop: LiveShop):
    page.get(f"{shop.base}/?shopper=pat")
    wait_for(lambda: ids(page, "#recs"), what="the page to load")
    search(page, "")
    assert message(page, "#search-status", "required") == "'q' is required"
    search(page, "x" * 600)
    assert message(page, "#search-status", "longer") == "'q' is longer than 512 characters"
    assert page.script("return document.getElementById('search-status').dataset.kind") == "error"
    page.type("#shopper-input", "nobody")
    page.click("#shopper-form button")
    message(page, "#recs-status", "no events seen for user 'nobody'")
    wait_for(lambda: ids(page, "#recs"), what="trending in place of recommendations")
    screenshot(page, "shop-bad-input")
    assert console_errors(page, allow_http_errors=True) == []  # Chromium logs each 4xx; no script error


def test_the_api_going_down_shows_a_message_not_a_blank_page(page: Driver, shop: LiveShop):
    page.get(f"{shop.base}/?shopper=pat")
    wait_for(lambda: ids(page, "#recs"), what="the page to load")
    shop.run(shop.stop_gateway())
    search(page, "drill")
    message(page, "#search-status", "not reachable")
    assert ids(page, "#trending"), "what was shown stays shown"
    screenshot(page, "shop-api-down")
    assert console_errors(page, allow_http_errors=True) == []


def test_controls_are_labelled_and_the_page_fits_a_phone(page: Driver, shop: LiveShop):
    page.resize(390, 844)
    page.get(f"{shop.base}/?shopper=pat")
    search(page, "paint")
    wait_for(lambda: ids(page, "#results"), what="search results")
    unlabelled = page.script("return [...document.querySelectorAll('input, select')]"
                             ".filter(e => !e.labels.length).map(e => e.id)")
    assert unlabelled == []
    width = page.script("return [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"the page scrolls sideways at phone width: {width}"
    screenshot(page, "shop-phone")
    assert console_errors(page) == []


def test_with_api_keys_the_page_says_so_and_sends_the_key_it_is_given(page: Driver, keyed_shop: LiveShop):
    page.get(f"{keyed_shop.base}/?shopper=pat")
    message(page, "#recs-status", "a valid 'X-API-Key' header is required")
    page.click(".key summary")
    page.type("#key-input", API_KEY)
    page.click("#key-form button")
    wait_for(lambda: ids(page, "#recs"), what="recommendations once the key is given")
    search(page, "drill")
    wait_for(lambda: "drill" in ids(page, "#results"), what="search results with the key")
    assert console_errors(page, allow_http_errors=True) == []  # the 401s before the key
