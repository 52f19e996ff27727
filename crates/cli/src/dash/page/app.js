// EdgeKV's dashboard page: one event stream (hello, then a snapshot a second, and probe
// steps), rendered into plain DOM and inline SVG. No libraries, no build step. The page keeps
// at most TIMELINE points and one probe, so it does not grow however long it stays open.
"use strict";

const TIMELINE = 300;
const COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"];
const SVG = "http://www.w3.org/2000/svg";

const state = { regions: [], timeline: [], snapshot: null, probe: null, canStop: false };

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else if (k === "onclick") node.addEventListener("click", v);
    else node[k] = v;
  }
  for (const child of children) node.append(child);
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function ms(value) {
  if (value === null || value === undefined) return "–";
  return value >= 10000 ? (value / 1000).toFixed(1) + " s" : Math.round(value) + " ms";
}

function duration(value) {
  if (value === null || value === undefined) return "–";
  const s = Math.floor(value / 1000);
  return s < 120 ? s + " s" : Math.floor(s / 60) + " min";
}

function colour(region) {
  return COLOURS[Math.max(0, state.regions.indexOf(region)) % COLOURS.length];
}

// ---- the stream -------------------------------------------------------------------------

function connect() {
  const source = new EventSource("/events");
  source.onopen = () => { $("conn").textContent = "live"; $("conn").className = "badge up"; };
  source.onerror = () => { $("conn").textContent = "reconnecting"; $("conn").className = "badge down"; };
  source.onmessage = (message) => {
    let event;
    try { event = JSON.parse(message.data); } catch (_) { return; }
    if (event.type === "hello") hello(event);
    else if (event.type === "probe") probeStep(event);
    else if (event.t_ms !== undefined) snapshot(event);
  };
}

function hello(event) {
  state.regions = event.regions;
  state.timeline = event.timeline.slice(-TIMELINE);
  state.canStop = event.can_stop_regions;
  if (event.dev_token && !$("token").value) $("token").value = "edgekv-dev-admin-token";
  for (const id of ["probe-region", "fault-from", "fault-to"]) {
    const select = $(id);
    select.replaceChildren(...event.regions.map((r) => el("option", { value: r, textContent: r })));
  }
  if (event.regions.length > 1) $("fault-to").value = event.regions[1];
  $("runs-section").hidden = !event.runs;
  if (event.runs) loadRuns();
  drawTimeline();
}

function snapshot(snap) {
  state.snapshot = snap;
  if (snap.point) {
    const last = state.timeline[state.timeline.length - 1];
    if (!last || last.t_ms !== snap.point.t_ms) state.timeline.push(snap.point);
    if (state.timeline.length > TIMELINE) state.timeline.splice(0, state.timeline.length - TIMELINE);
  }
  const up = snap.regions.filter((r) => r.up).length;
  $("cluster-info").textContent =
    `${snap.regions.length} regions, ${up} up` + (snap.seed !== null ? `, seed ${snap.seed}` : "");
  const converged = $("converged");
  if (snap.converged_for_ms !== null) {
    converged.textContent = "converged for " + duration(snap.converged_for_ms);
    converged.className = "badge ok";
  } else {
    converged.textContent = "diverged";
    converged.className = "badge bad";
  }
  drawRegions(snap);
  drawMatrix(snap);
  drawFaults(snap);
  drawTimeline();
}

// ---- regions and links -------------------------------------------------------------------

function drawRegions(snap) {
  const cards = snap.regions.map((r) => {
    const rows = [
      ["writes/s", r.writes_per_s], ["reads/s", r.reads_per_s], ["keys", r.keys ?? "–"],
      ["outbox", r.outbox ?? "–"], ["clock offset", r.clock_offset_ms === null || r.clock_offset_ms === undefined ? "–" : r.clock_offset_ms + " ms"],
      ["storage", r.durability ?? "–"],
      ["digest", r.up ? (r.matches_peers ? "matches all" : "differs") : "–"],
    ];
    const dl = el("dl", {});
    for (const [k, v] of rows) dl.append(el("dt", { textContent: k }), el("dd", { textContent: String(v), "data-field": k }));
    const badge = el("span", { class: "badge " + (r.up ? "up" : "down"), textContent: (r.up ? "up " : "down ") + duration(r.for_ms) });
    const card = el("div", { class: "region " + (r.up ? "up" : "down"), "data-region": r.name, "data-up": String(r.up) },
      el("h3", {}, el("span", { textContent: r.name, style: `color:${colour(r.name)}` }), badge), dl);
    if (!r.up && r.error) card.append(el("div", { class: "legend", textContent: r.error }));
    if (state.canStop) {
      const action = r.up ? "stop" : "start";
      card.append(el("button", { type: "button", textContent: action, "data-action": action, onclick: () => regionAction(r.name, action) }));
    }
    return card;
  });
  $("regions").replaceChildren(...cards);
}

function linkClass(faults) {
  if (faults.some((f) => f.startsWith("partition") || f.startsWith("one-way"))) return "cut";
  if (faults.some((f) => f.startsWith("replication paused"))) return "paused";
  if (faults.length) return "degraded";
  return "";
}

function drawMatrix(snap) {
  const names = snap.regions.map((r) => r.name);
  const head = el("tr", {}, el("th", { textContent: "from \\ to" }), ...names.map((n) => el("th", { textContent: n })));
  const rows = names.map((from) => {
    const cells = names.map((to) => {
      if (from === to) return el("td", { class: "self" });
      const link = snap.links.find((l) => l.from === from && l.to === to) || { faults: [] };
      const td = el("td", { class: linkClass(link.faults), "data-from": from, "data-to": to, "data-backlog": String(link.backlog ?? ""), "data-faults": link.faults.join("; ") });
      td.append(el("div", { class: "model", textContent: link.model ?? "?" }));
      td.append(el("div", { textContent: `${ms(link.lag_p50_ms)} / ${ms(link.lag_p99_ms)}` }));
      td.append(el("div", { textContent: `backlog ${link.backlog ?? "–"}` }));
      for (const f of link.faults) td.append(el("div", { class: "fault", textContent: f }));
      return td;
    });
    return el("tr", {}, el("th", { textContent: from }), ...cells);
  });
  $("matrix").replaceChildren(head, ...rows);
}

function drawFaults(snap) {
  const list = $("faults");
  if (!snap.faults.length) { list.replaceChildren(el("li", { class: "none", textContent: "none" })); return; }
  list.replaceChildren(...snap.faults.map((f) => el("li", { "data-kind": f.kind },
    f.description + ` (in ${f.regions} regions) `,
    el("button", { type: "button", textContent: "undo", onclick: () => control("/api/faults/remove", { ids: f.ids }) }))));
}

// ---- the timeline ------------------------------------------------------------------------

function drawTimeline() {
  const chart = $("timeline");
  const W = 900, H = 220, L = 40, R = 50, T = 10, B = 20;
  const points = state.timeline;
  chart.replaceChildren();
  if (points.length < 2) { chart.append(svg("text", { x: L, y: H / 2 }, "waiting for data…")); return; }
  const t0 = points[0].t_ms, t1 = points[points.length - 1].t_ms;
  const x = (t) => L + ((t - t0) / Math.max(1, t1 - t0)) * (W - L - R);
  let maxRate = 1, maxLag = 1;
  for (const p of points) for (const r of Object.values(p.regions)) {
    maxRate = Math.max(maxRate, r.writes || 0);
    maxLag = Math.max(maxLag, r.lag_p99_ms || 0);
  }
  const y = (v) => H - B - (v / maxRate) * (H - T - B);
  const yLag = (v) => H - B - (v / maxLag) * (H - T - B);
  // Fault bands: every run of points with faults in force.
  let start = null;
  points.forEach((p, i) => {
    const on = p.faults > 0, end = i === points.length - 1;
    if (on && start === null) start = p.t_ms;
    if (start !== null && (!on || end)) {
      chart.append(svg("rect", { x: x(start), y: T, width: Math.max(1, x(p.t_ms) - x(start)), height: H - T - B, fill: "#fde2e2", class: "fault-band" }));
      start = null;
    }
  });
  chart.append(svg("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#999" }));
  chart.append(svg("text", { x: 2, y: T + 10, "font-size": 10 }, `${maxRate.toFixed(0)}/s`));
  chart.append(svg("text", { x: W - R + 4, y: T + 10, "font-size": 10 }, ms(maxLag)));
  chart.append(svg("text", { x: L, y: H - 4, "font-size": 10 }, `${Math.round((t1 - t0) / 1000)} s`));
  for (const region of state.regions) {
    const rate = points.map((p) => `${x(p.t_ms).toFixed(1)},${y((p.regions[region] || {}).writes || 0).toFixed(1)}`);
    chart.append(svg("polyline", { points: rate.join(" "), fill: "none", stroke: colour(region), "stroke-width": 1.5, "data-region": region }));
    const lag = points.filter((p) => (p.regions[region] || {}).lag_p99_ms != null)
      .map((p) => `${x(p.t_ms).toFixed(1)},${yLag(p.regions[region].lag_p99_ms).toFixed(1)}`);
    if (lag.length > 1) chart.append(svg("polyline", { points: lag.join(" "), fill: "none", stroke: colour(region), "stroke-dasharray": "4 3", "stroke-width": 1 }));
  }
  $("timeline-legend").replaceChildren(...state.regions.map((r) => el("span", { textContent: "■ " + r + "  ", style: `color:${colour(r)}` })));
}

// ---- the probe ---------------------------------------------------------------------------

function probeStep(event) {
  if (!state.probe || state.probe.id !== event.id) {
    state.probe = { id: event.id, origin: event.origin, key: event.key, predicted: [], arrivals: {}, stage: event.stage };
  }
  const probe = state.probe;
  probe.stage = event.stage;
  if (event.stage === "written") probe.predicted = event.predicted;
  if (event.stage === "arrived") probe.arrivals[event.region] = event.after_ms;
  if (event.stage === "gave_up") probe.arrivals[event.region] = null;
  if (event.stage === "failed") message(`probe ${event.id} failed: ${event.error}`, true);
  if (event.stage === "done") message(`probe ${event.id}: every region answered`, false);
  drawProbe();
}

function drawProbe() {
  const probe = state.probe;
  const log = $("probe-log");
  const chart = $("probe-diagram");
  chart.replaceChildren();
  if (!probe) return;
  const W = 900, H = 200, L = 60, R = 20, T = 20, B = 25;
  const regions = state.regions;
  const predictedOf = (r) => probe.predicted.find((p) => p.region === r) || {};
  let span = 1000;
  for (const r of regions) {
    span = Math.max(span, probe.arrivals[r] || 0, predictedOf(r).p99_ms || 0);
  }
  const x = (i) => L + (i / Math.max(1, regions.length - 1)) * (W - L - R);
  const y = (t) => T + (t / span) * (H - T - B);
  regions.forEach((r, i) => {
    chart.append(svg("line", { x1: x(i), y1: T, x2: x(i), y2: H - B, stroke: "#ccc" }));
    chart.append(svg("text", { x: x(i) - 15, y: 14, "font-size": 11, fill: colour(r) }, r));
  });
  chart.append(svg("text", { x: 2, y: H - 8, "font-size": 10 }, ms(span)));
  const o = regions.indexOf(probe.origin);
  chart.append(svg("circle", { cx: x(o), cy: y(0), r: 4, fill: colour(probe.origin) }));
  const items = [el("li", { textContent: `${probe.origin}: wrote "${probe.key}" (${probe.stage})` })];
  regions.forEach((r, i) => {
    if (r === probe.origin) return;
    const p = predictedOf(r);
    if (p.p50_ms != null) {
      chart.append(svg("line", { x1: x(i) - 8, y1: y(p.p50_ms), x2: x(i) + 8, y2: y(p.p50_ms), stroke: "#888", "stroke-dasharray": "2 2" }));
    }
    const at = probe.arrivals[r];
    if (at !== undefined && at !== null) {
      chart.append(svg("line", { x1: x(o), y1: y(0), x2: x(i), y2: y(at), stroke: colour(probe.origin), "marker-end": "" }));
      chart.append(svg("circle", { cx: x(i), cy: y(at), r: 3, fill: colour(r) }));
    }
    const seen = at === undefined ? "waiting…" : at === null ? "not seen (gave up)" : `seen after ${ms(at)}`;
    const model = p.p50_ms != null ? ` (model ${p.model}: p50 ${ms(p.p50_ms)}, p99 ${ms(p.p99_ms)})` : "";
    items.push(el("li", { "data-region": r, "data-arrived": String(at !== undefined && at !== null), textContent: `${r}: ${seen}${model}` }));
  });
  log.replaceChildren(...items);
}

// ---- controls ----------------------------------------------------------------------------

function message(text, isError) {
  const m = $("message");
  m.textContent = text;
  m.className = isError ? "error" : "done";
}

async function post(path, body, withToken) {
  const headers = { "content-type": "application/json" };
  if (withToken) headers.authorization = "Bearer " + $("token").value;
  try {
    const reply = await fetch(path, { method: "POST", headers, body: JSON.stringify(body || {}) });
    const answer = await reply.json().catch(() => ({ ok: false, error: reply.statusText }));
    message(answer.ok ? answer.message : answer.error, !answer.ok);
    return answer;
  } catch (err) {
    message(String(err), true);
    return { ok: false };
  }
}

function control(path, body) { return post(path, body, true); }

function regionAction(region, action) {
  return control(`/api/regions/${encodeURIComponent(region)}/${action}`, {});
}

function buildFault() {
  const kind = $("fault-kind").value, from = $("fault-from").value, to = $("fault-to").value;
  switch (kind) {
    case "isolate": return { kind: "partition", a: [from], b: state.regions.filter((r) => r !== from) };
    case "partition": return { kind: "partition", a: [from], b: [to] };
    case "one_way": return { kind: "one_way", from, to };
    case "delay": return { kind: "delay", from, to, extra: $("fault-extra").value };
    case "loss": return { kind: "loss", from, to, rate: Number($("fault-rate").value) };
    case "duplicate": return { kind: "duplicate", from, to, rate: Number($("fault-rate").value) };
    case "pause": return { kind: "pause", from, to };
    case "clock_offset": return { kind: "clock_offset", region: from, offset_ms: Number($("fault-offset").value) };
  }
  return null;
}

function showFaultFields() {
  const kind = $("fault-kind").value;
  const show = (cls, on) => { for (const n of document.querySelectorAll("#fault-form ." + cls)) n.hidden = !on; };
  show("to", !["isolate", "clock_offset"].includes(kind));
  show("extra", kind === "delay");
  show("rate", kind === "loss" || kind === "duplicate");
  show("offset", kind === "clock_offset");
}

async function loadRuns() {
  try {
    const reply = await fetch("/api/runs");
    const { runs } = await reply.json();
    $("runs").replaceChildren(...runs.map((run) => el("li", {},
      el("a", { href: run.report, target: "_blank", textContent: run.name }),
      ` ${run.scenario ?? ""} ${run.verdict ?? ""}`)));
    if (!runs.length) $("runs").replaceChildren(el("li", { textContent: "no runs with a report.html yet" }));
  } catch (err) {
    message("could not list the runs: " + err, true);
  }
}

$("probe-form").addEventListener("submit", (e) => {
  e.preventDefault();
  post("/api/probe", { region: $("probe-region").value, key: $("probe-key").value, value: $("probe-value").value }, false);
});
$("fault-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const fault = buildFault();
  if (fault) control("/api/faults", { fault });
});
$("fault-kind").addEventListener("change", showFaultFields);
$("heal").addEventListener("click", () => control("/api/heal", {}));
showFaultFields();
connect();
