// The operations page: reads /ops/metrics (the gateway's, worker's and learner's own
// Prometheus metrics) every few seconds; rates and the chart's history are kept here only.
"use strict";

const $ = (id) => document.getElementById(id);
const POINTS = 300;  // chart history kept in the page
const SVG = "http://www.w3.org/2000/svg";
const ROLLBACKS = ["rollback", "manual_rollback"];  // the learner's decision labels that step back

const ops = { previous: null, series: [], versions: null, decisions: null, sources: {} };

// ---- reading samples ---------------------------------------------------------------------
function samples(data, source, name, match = {}) {
  const found = (data.sources[source] || { samples: [] }).samples;
  return found.filter(([n, labels]) => n === name && Object.entries(match).every(([k, v]) => labels[k] === v));
}

function total(data, source, name, match) {
  return samples(data, source, name, match).reduce((sum, [, , value]) => sum + value, 0);
}

function one(data, source, name) {
  const found = samples(data, source, name);
  return found.length ? found[0][2] : null;
}

function rate(name, source, data, match) {
  if (!ops.previous || !data.sources[source].up || !ops.previous.sources[source].up) { return null; }
  const dt = data.ts - ops.previous.ts;
  return dt > 0 ? (total(data, source, name, match) - total(ops.previous, source, name, match)) / dt : null;
}

// The 95th percentile from cumulative histogram buckets: the upper bound of the first bucket holding 95%.
function p95(data, source, name) {
  const buckets = samples(data, source, name + "_bucket")
    .map(([, labels, value]) => [Number(labels.le), value]).sort((a, b) => a[0] - b[0]);
  const count = buckets.length ? buckets[buckets.length - 1][1] : 0;
  if (!count) { return null; }
  const hit = buckets.find(([, value]) => value >= 0.95 * count);
  return hit ? hit[0] : null;
}

function seconds(value) {
  if (value === null || value === undefined || !isFinite(value)) { return "–"; }
  return value < 1 ? (value * 1000).toFixed(0) + " ms" : value.toFixed(2) + " s";
}

function perSecond(value) {
  return value === null ? "–" : value.toFixed(1) + " /s";
}

// ---- one refresh -------------------------------------------------------------------------
async function refresh() {
  let data;
  try {
    data = await SR.api("/ops/metrics");
  } catch (err) {
    SR.say($("notice"), err.message, "error");
    return;
  }
  SR.say($("notice"), "");
  showSources(data);
  showStream(data);
  showModels(data);
  record(data);
  drawChart();
  $("updated").textContent = "Updated " + new Date(data.ts * 1000).toLocaleTimeString();
  ops.previous = data;
}

function showSources(data) {
  $("sources").replaceChildren(...Object.entries(data.sources).map(([name, source]) => {
    const was = ops.sources[name];
    if (was !== undefined && was !== source.up) { log(name + (source.up ? " metrics are back" : " metrics unreachable")); }
    ops.sources[name] = source.up;
    return SR.el("li", { class: source.up ? "up" : "down" },
                 name + ": " + (source.up ? "reporting" : "not reporting (" + source.error + ")"));
  }));
}

function showStream(data) {
  $("events-rate").textContent = perSecond(rate("streamrank_events_processed_total", "worker", data));
  $("accepted-rate").textContent = perSecond(rate("streamrank_http_events_accepted_total", "gateway", data,
                                                  { kind: "events" }));
  const lag = "streamrank_event_processing_lag_seconds";
  const n = rate(lag + "_count", "worker", data);
  const sum = rate(lag + "_sum", "worker", data);
  $("lag-mean").textContent = n ? seconds(sum / n) : "–";
  $("lag-p95").textContent = data.sources.worker.up ? seconds(p95(data, "worker", lag)) : "–";
  const dead = Object.keys(data.sources).map((s) => [s, total(data, s, "streamrank_dead_letters_total")]);
  $("dead-letters").textContent = dead.reduce((a, [, v]) => a + v, 0) + " (" +
    dead.map(([s, v]) => s + " " + v).join(", ") + ")";
}

function showModels(data) {
  const version = one(data, "gateway", "streamrank_gateway_online_version");
  const shown = version ? "v" + version : "none yet";
  if (ops.versions !== null && ops.versions !== shown) { log("serving version " + ops.versions + " → " + shown); }
  ops.versions = shown;
  $("gateway-version").textContent = shown;
  const learner = one(data, "learner", "streamrank_learner_serving_version");
  $("learner-version").textContent = learner === null ? "–" : "v" + learner;
  $("search-version").textContent = data.search_version || "text only (BM25)";
  $("swaps").textContent = String(total(data, "gateway", "streamrank_model_swaps_total"));
  const decisions = {};
  for (const [, labels, value] of samples(data, "learner", "streamrank_model_decisions_total")) {
    decisions[labels.decision] = value;
  }
  $("rollbacks").textContent = data.sources.learner.up
    ? String(ROLLBACKS.reduce((sum, d) => sum + (decisions[d] || 0), 0)) : "– (learner not reporting)";
  for (const [decision, count] of Object.entries(decisions)) {
    const before = ops.decisions ? ops.decisions[decision] || 0 : count;
    if (count > before) { log("learner decision: " + decision + " (×" + (count - before) + ")"); }
  }
  ops.decisions = decisions;
  $("decisions").replaceChildren(...Object.entries(decisions).sort().map(([decision, count]) =>
    SR.el("tr", {}, SR.el("th", { scope: "row" }, decision), SR.el("td", {}, String(count)))));
}

// ---- the chart ---------------------------------------------------------------------------
function record(data) {
  const point = { t: data.ts, live: {}, serving: {} };
  for (const [, labels, value] of samples(data, "learner", "streamrank_online_metric")) {
    if (labels.model === "live" || labels.model === "serving") { point[labels.model][labels.metric] = value; }
  }
  ops.series.push(point);
  if (ops.series.length > POINTS) { ops.series.shift(); }
  const names = [...new Set(ops.series.flatMap((p) => Object.keys(p.live)))].sort();
  const select = $("metric-select");
  if (names.join() !== [...select.options].map((o) => o.value).join()) {
    const chosen = select.value;
    select.replaceChildren(...names.map((n) => SR.el("option", { value: n }, n)));
    select.value = names.includes(chosen) ? chosen : (names.find((n) => n.startsWith("ndcg")) || names[0] || "");
  }
}

function drawChart() {
  const metric = $("metric-select").value;
  const chart = $("chart");
  const points = ops.series.filter((p) => metric in p.live || metric in p.serving);
  if (!metric || points.length < 1) {
    chart.replaceChildren();
    $("chart-status").textContent = "No online metric yet: the learner reports one once it has scored samples.";
    return;
  }
  const values = points.flatMap((p) => [p.live[metric], p.serving[metric]]).filter((v) => typeof v === "number");
  const lo = Math.min(...values), hi = Math.max(...values);
  const t0 = points[0].t, t1 = points[points.length - 1].t;
  const w = 600, h = 200, pad = 20, left = 60;
  const x = (t) => left + (t1 > t0 ? (t - t0) / (t1 - t0) : 1) * (w - left - pad);
  const y = (v) => h - pad - (hi > lo ? (v - lo) / (hi - lo) : 0.5) * (h - 2 * pad);
  const line = (model) => points.filter((p) => typeof p[model][metric] === "number")
    .map((p) => x(p.t).toFixed(1) + "," + y(p[model][metric]).toFixed(1)).join(" ");
  const last = points[points.length - 1];
  const svg = svgEl("svg", { viewBox: `0 0 ${w} ${h}`, role: "img",
    "aria-label": `${metric}: live ${fmt(last.live[metric])}, serving ${fmt(last.serving[metric])}` });
  svg.append(
    svgEl("line", { x1: left, y1: h - pad, x2: w - pad, y2: h - pad, class: "axis" }),
    svgEl("line", { x1: left, y1: pad, x2: left, y2: h - pad, class: "axis" }),
    svgEl("text", { x: left - 6, y: pad + 4, class: "tick" }, fmt(hi)),
    svgEl("text", { x: left - 6, y: h - pad + 4, class: "tick" }, fmt(lo)),
    svgEl("polyline", { points: line("serving"), class: "serving" }),
    svgEl("polyline", { points: line("live"), class: "live" }));
  chart.replaceChildren(svg);
  $("chart-status").textContent = `${points.length} readings over ${Math.round(t1 - t0)} s`;
}

function svgEl(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) { node.setAttribute(k, String(v)); }
  if (text !== undefined) { node.textContent = text; }
  return node;
}

function fmt(v) {
  return typeof v === "number" ? v.toFixed(4) : "–";
}

function log(message) {
  const list = $("log");
  list.prepend(SR.el("li", {}, new Date().toLocaleTimeString() + " " + message));
  while (list.children.length > 50) { list.lastChild.remove(); }
}

// ---- rollback ----------------------------------------------------------------------------
async function showVersions() {
  const status = $("admin-status");
  try {
    const body = await SR.api("/v1/admin/model", { token: $("token-input").value });
    const options = body.held_versions.map((v) => SR.el("option", { value: v },
      "v" + v + (v === body.serving_version ? " (serving now)" : "")));
    $("version-select").replaceChildren(...options);
    const older = body.held_versions.filter((v) => v < body.serving_version);
    if (older.length) { $("version-select").value = String(older[older.length - 1]); }
    $("rollback-form").hidden = !options.length;
    SR.say(status, "Serving v" + body.serving_version + "; held: " + (body.held_versions.join(", ") || "none"));
  } catch (err) {
    $("rollback-form").hidden = true;
    SR.say(status, err.message, "error");
  }
}

async function rollBack() {
  const version = Number($("version-select").value);
  try {
    await SR.api("/v1/admin/model", { method: "POST", token: $("token-input").value,
                                      body: { action: "rollback", version } });
    SR.say($("admin-status"), "Rollback to v" + version + " sent to the learner; the served version changes " +
                              "when it publishes the new version.");
    log("rollback to v" + version + " requested");
  } catch (err) {
    SR.say($("admin-status"), err.message, "error");
  }
}

function start() {
  SR.catchAll($("notice"));
  $("admin-form").addEventListener("submit", (event) => { event.preventDefault(); showVersions(); });
  $("rollback-form").addEventListener("submit", (event) => { event.preventDefault(); rollBack(); });
  $("metric-select").addEventListener("change", drawChart);
  const every = Number(new URLSearchParams(window.location.search).get("every")) || 2000;
  refresh();
  window.setInterval(refresh, Math.max(250, every));
}

document.addEventListener("DOMContentLoaded", start);
