// What both pages share: calling the gateway's API and writing into the page safely.
"use strict";

const SR = (() => {
  const KEY_STORE = "streamrank.apiKey";

  class ApiError extends Error {
    constructor(status, message, body) {
      super(message);
      this.status = status;  // 0: the API could not be reached at all
      this.body = body;
    }
  }

  // The API key (STREAMRANK_API_KEYS) is kept in this browser only, as the shop's staff
  // typed it: the pages themselves are served without one.
  function apiKey() {
    try { return window.localStorage.getItem(KEY_STORE) || ""; } catch (_) { return ""; }
  }

  function setApiKey(value) {
    try {
      if (value) { window.localStorage.setItem(KEY_STORE, value); } else { window.localStorage.removeItem(KEY_STORE); }
    } catch (_) { /* storage off (private window): the key lasts until the page closes */ }
    memoryKey = value;
  }
  let memoryKey = "";

  // The API's own message on failure, never a thrown network error: pages show what the
  // gateway said (its JSON "error"), or that it could not be reached.
  async function api(path, { method = "GET", body, token } = {}) {
    const headers = { "Accept": "application/json" };
    const key = apiKey() || memoryKey;
    if (key) { headers["X-API-Key"] = key; }
    if (token) { headers["Authorization"] = "Bearer " + token; }
    if (body !== undefined) { headers["Content-Type"] = "application/json"; }
    let response;
    try {
      response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (err) {
      throw new ApiError(0, "The shop's API is not reachable (" + (err && err.message || "network error") +
                         "). Is the gateway running?");
    }
    let data = null;
    try { data = await response.json(); } catch (_) { data = null; }
    if (!response.ok) {
      throw new ApiError(response.status, errorText(response, data), data);
    }
    return data;
  }

  function errorText(response, data) {
    if (data && typeof data.error === "string") {
      const first = Array.isArray(data.invalid) && data.invalid.length ? ": " + data.invalid[0].reason : "";
      return data.error + first;
    }
    return "HTTP " + response.status + " " + response.statusText;
  }

  // Builds an element; strings become text nodes, so titles from the catalog never become markup.
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) { continue; }
      if (name.startsWith("on")) { node.addEventListener(name.slice(2), value); }
      else if (name === "text") { node.textContent = value; }
      else { node.setAttribute(name, value === true ? "" : String(value)); }
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) { continue; }
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // A message in a region (role=status or role=alert in the markup); "" clears it.
  function say(region, message, kind = "info") {
    region.textContent = message;
    region.dataset.kind = kind;
    region.hidden = !message;
  }

  function price(value) {
    return typeof value === "number" ? "$" + value.toFixed(2) : "price not listed";
  }

  function eventId() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") { return window.crypto.randomUUID(); }
    return "ev-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 12);
  }

  // A page's errors end up in the page, not only in the console.
  function catchAll(region) {
    window.addEventListener("unhandledrejection", (event) => {
      event.preventDefault();
      say(region, String(event.reason && event.reason.message || event.reason), "error");
    });
  }

  return { ApiError, api, apiKey, setApiKey, el, say, price, eventId, catchAll };
})();
