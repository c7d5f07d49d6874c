// The storefront: search, a shopper's recommendations, a product with similar items, trending.
// Every action is a call to the public API; clicks, carts and purchases are real events.
"use strict";

const $ = (id) => document.getElementById(id);
const SHOPPER_STORE = "streamrank.shopper";
const RECS_K = 8;
const WATCH_MS = 3000;  // how long the page waits for an event to change the recommendations
const WATCH_EVERY_MS = 250;

const state = { shopper: "", product: null, recsSignature: "" };

function itemRow(item, { onOpen, why = [] } = {}) {
  const title = item.title || item.item_id;
  return SR.el("li", { "data-item-id": item.item_id, class: item.sponsored ? "sponsored" : null },
    SR.el("button", { type: "button", class: "link", onclick: onOpen }, title),
    SR.el("span", { class: "price" }, SR.price(item.price)),
    item.sponsored ? SR.el("span", { class: "badge ad", title: "a paid placement" }, "Sponsored") : null,
    why.map(([kind, hint]) => SR.el("span", { class: "badge " + kind, title: hint }, kind)));
}

function renderList(list, items, options) {
  list.replaceChildren(...items.map((item, index) => itemRow(item, options(item, index))));
}

// ---- shopper and recommendations ---------------------------------------------------------
async function chooseShopper(id) {
  state.shopper = id.trim();
  try { window.localStorage.setItem(SHOPPER_STORE, state.shopper); } catch (_) { /* storage off */ }
  $("shopper-input").value = state.shopper;
  $("recs-heading").textContent = state.shopper ? "Recommended for " + state.shopper : "Recommended";
  SR.say($("recs-status"), "");
  if (state.shopper) {
    try {
      await SR.api("/v1/users/" + encodeURIComponent(state.shopper));
    } catch (err) {
      // An unknown shopper still gets recommendations (trending): say so, with the API's words.
      SR.say($("recs-status"), err.message + (err.status === 404 ? " (showing trending until this shopper acts)" : ""),
             err.status === 404 ? "info" : "error");
    }
  }
  await refreshRecs();
}

async function refreshRecs() {
  const query = new URLSearchParams({ k: String(RECS_K) });
  if (state.shopper) { query.set("user_id", state.shopper); }
  try {
    const body = await SR.api("/v1/recommend?" + query);
    renderList($("recs"), body.items, (item, index) => ({
      onOpen: () => openProduct(item, { position: index, requestId: body.request_id }) }));
    $("recs-meta").textContent = body.strategy + " · model " + body.model_version;
    state.recsSignature = body.items.map((i) => i.item_id).join(",");
    return state.recsSignature;
  } catch (err) {
    SR.say($("recs-status"), err.message, "error");
    return null;
  }
}

// After an event: the stream updates the shopper's profile, then the gateway's copy of it.
async function watchRecs(before) {
  const start = performance.now();
  while (performance.now() - start < WATCH_MS) {
    await new Promise((resolve) => setTimeout(resolve, WATCH_EVERY_MS));
    const now = await refreshRecs();
    if (now === null) { return; }
    if (now !== before) {
      SR.say($("recs-status"), "Updated " + ((performance.now() - start) / 1000).toFixed(1) + " s after your action.");
      return;
    }
  }
  SR.say($("recs-status"), "No change to the recommendations yet.");
}

async function sendEvent(type, itemId, extra = {}) {
  if (!state.shopper) {
    SR.say($("notice"), "Choose a shopper first: events belong to a shopper.", "error");
    return false;
  }
  const event = { event_id: SR.eventId(), user_id: state.shopper, type, item_id: itemId,
                  ts: Date.now() / 1000, ...extra };
  try {
    await SR.api("/v1/events", { method: "POST", body: event });
  } catch (err) {
    SR.say($("notice"), "The " + type.replace(/_/g, " ") + " was not recorded: " + err.message, "error");
    return false;
  }
  SR.say($("notice"), "");
  watchRecs(state.recsSignature);
  return true;
}

// ---- search ------------------------------------------------------------------------------
async function search(q) {
  const status = $("search-status");
  const params = new URLSearchParams({ q, k: "10" });
  const anonymous = state.shopper ? SR.api("/v1/search?" + params).catch(() => null) : Promise.resolve(null);
  if (state.shopper) { params.set("user_id", state.shopper); }
  let body;
  try {
    body = await SR.api("/v1/search?" + params);
  } catch (err) {
    $("results").replaceChildren();
    SR.say(status, err.message, "error");
    return;
  }
  const plain = await anonymous;
  const plainRank = plain ? new Map(plain.items.map((item, index) => [item.item_id, index])) : null;
  renderList($("results"), body.items, (item, index) => ({
    why: reasons(item, body.query, body.model_version, index, plainRank),
    onOpen: () => openProduct(item, { position: index, requestId: body.request_id, query: body.query, click: true }),
  }));
  SR.say(status, body.items.length ? body.items.length + " results · model " + body.model_version
                                   : "No results for “" + body.query + "”.");
}

// Why an item is here, from what the API returns: a query word in the title (lexical), none
// (semantic: the dense model matched it), and higher than for an anonymous shopper (personal).
function reasons(item, query, version, rank, plainRank) {
  const words = query.toLowerCase().split(/[\s\p{P}]+/u).filter((w) => w.length > 1);
  const title = (item.title || "").toLowerCase();
  const textOnly = version === "bm25";
  const out = [words.some((w) => title.includes(w)) || textOnly
    ? ["lexical", "the query's words match the item's text"]
    : ["semantic", "matched by meaning: no query word is in the title"]];
  if (plainRank && (!plainRank.has(item.item_id) || rank < plainRank.get(item.item_id))) {
    out.push(["personal", "ranked higher for this shopper than for an anonymous one"]);
  }
  return out;
}

// ---- product -----------------------------------------------------------------------------
async function openProduct(item, { position, requestId, query, click = true } = {}) {
  state.product = item;
  const section = $("product");
  section.hidden = false;
  $("product-title").textContent = item.title || item.item_id;
  $("product-meta").textContent = SR.price(item.price);
  SR.say($("product-status"), "");
  section.focus();
  if (click) {
    // A sponsored result's token goes back with its click: the worker charges the campaign by it
    // (undefined on organic results, which JSON leaves out).
    sendEvent("click", item.item_id, { position, request_id: requestId, query, ad_token: item.ad_token });
  }
  try {
    const view = await SR.api("/v1/items/" + encodeURIComponent(item.item_id));
    $("product-meta").textContent = describe(view);
  } catch (err) {
    SR.say($("product-status"), err.message, "error");
  }
  await loadSimilar(item.item_id);
}

function describe(view) {
  const c = view.catalog || {};
  const parts = [SR.price(c.price)];
  if (c.category) { parts.push(c.category); }
  if (typeof c.stock === "number") { parts.push(c.stock > 0 ? c.stock + " in stock" : "out of stock"); }
  return parts.join(" · ");
}

async function loadSimilar(itemId) {
  try {
    const body = await SR.api("/v1/items/" + encodeURIComponent(itemId) + "/similar?k=6");
    renderList($("similar"), body.items, (item, index) => ({
      onOpen: () => openProduct(item, { position: index, requestId: body.request_id }) }));
    if (!body.items.length) { SR.say($("product-status"), "No similar items yet: nobody has moved on from this one."); }
  } catch (err) {
    SR.say($("product-status"), err.message, "error");
  }
}

async function productAction(type, done) {
  if (state.product && await sendEvent(type, state.product.item_id)) {
    SR.say($("product-status"), done);
  }
}

// ---- trending ----------------------------------------------------------------------------
async function loadTrending() {
  try {
    const body = await SR.api("/v1/items/popular?k=8");
    renderList($("trending"), body.items, (item, index) => ({ onOpen: () => openProduct(item, { position: index }) }));
    SR.say($("trending-status"), body.items.length ? "" : "Nothing trending yet.");
  } catch (err) {
    SR.say($("trending-status"), err.message, "error");
  }
}

// ---- wiring ------------------------------------------------------------------------------
function start() {
  SR.catchAll($("notice"));
  $("search-form").addEventListener("submit", (event) => { event.preventDefault(); search($("search-input").value); });
  $("shopper-form").addEventListener("submit", (event) => { event.preventDefault(); chooseShopper($("shopper-input").value); });
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    SR.setApiKey($("key-input").value.trim());
    $("key-input").value = "";
    SR.say($("notice"), "API key saved in this browser.");
    chooseShopper(state.shopper);
    loadTrending();
  });
  $("add-to-cart").addEventListener("click", () => productAction("add_to_cart", "Added to the cart."));
  $("buy").addEventListener("click", () => productAction("purchase", "Bought. Thank you!"));
  const params = new URLSearchParams(window.location.search);
  let stored = "";
  try { stored = window.localStorage.getItem(SHOPPER_STORE) || ""; } catch (_) { /* storage off */ }
  chooseShopper(params.get("shopper") || stored || "shopper-1");
  loadTrending();
  window.setInterval(loadTrending, 10000);
}

document.addEventListener("DOMContentLoaded", start);
