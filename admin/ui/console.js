// The console's script: refreshes the server-rendered page from
// GET /api/v1/console every two seconds and draws the throughput chart.
// Every value goes into the page as text (textContent), never as markup.
// Actions are API calls with the token typed on the page and a JSON
// content type, as the API requires of a state-changing request.
"use strict";

const POLL_MS = 2000;
let polls = 0;

function rate(v) { return v.toFixed(2); }

// age is admin.ageText: 45s, 12m, 3h5m, 2d4h.
function age(sec) {
  sec = Math.max(0, Math.floor(sec));
  if (sec < 60) return sec + "s";
  if (sec < 3600) return Math.floor(sec / 60) + "m";
  if (sec < 48 * 3600) {
    const m = Math.floor(sec / 60) % 60;
    return Math.floor(sec / 3600) + "h" + (m ? m + "m" : "");
  }
  const h = Math.floor(sec / 3600) % 24;
  return Math.floor(sec / 86400) + "d" + (h ? h + "h" : "");
}

function lastMinute(v) {
  const n = Math.min(60, v.length);
  if (n === 0) return 0;
  let sum = 0;
  for (let i = v.length - n; i < v.length; i++) sum += v[i];
  return sum / n;
}

function text(id, v) { const e = document.getElementById(id); if (e) e.textContent = v; }

function cell(tr, cls, v) {
  const td = document.createElement("td");
  if (cls) td.className = cls;
  td.textContent = v;
  tr.appendChild(td);
  return td;
}

function rows(id, items, fill) {
  const body = document.querySelector("#" + id + " tbody");
  const out = document.createDocumentFragment();
  for (const it of items) {
    const tr = document.createElement("tr");
    fill(tr, it);
    out.appendChild(tr);
  }
  body.replaceChildren(out);
}

function token() { return sessionStorage.getItem("cuemta-token") || ""; }

function headers(json) {
  const h = {};
  if (json) h["Content-Type"] = "application/json";
  if (token()) h["Authorization"] = "Bearer " + token();
  return h;
}

async function act(method, path, body, what) {
  const res = await fetch(path, { method, headers: headers(true), body: body ? JSON.stringify(body) : undefined });
  let msg = what + ": " + res.status;
  try { const j = await res.json(); msg += j.error ? " " + j.error : " ok"; } catch (e) { /* not JSON */ }
  text("action-result", msg);
  poll();
}

function button(td, label, fn) {
  const b = document.createElement("button");
  b.textContent = label;
  b.addEventListener("click", fn);
  td.appendChild(b);
}

function chart(t) {
  const svg = document.getElementById("chart");
  const ns = "http://www.w3.org/2000/svg";
  const series = ["received", "delivered", "deferred", "bounced"];
  // At most 60 points: per-minute sums over the hour, shorter buckets
  // while the process is younger, so that a second's burst does not
  // flatten the rest and a young process still draws a line.
  const n = (t.received || []).length;
  const step = Math.max(1, Math.ceil(n / 60));
  const mins = {};
  let max = 1;
  for (const s of series) {
    const v = t[s] || [], m = [];
    for (let i = 0; i < v.length; i += step) m.push(v.slice(i, i + step).reduce((a, b) => a + b, 0));
    mins[s] = m;
    for (const x of m) max = Math.max(max, x);
  }
  const lines = [];
  for (const s of series) {
    const m = mins[s];
    const pts = m.map((x, i) => ((i / Math.max(1, m.length - 1)) * 600).toFixed(1) + "," + (118 - (x / max) * 114).toFixed(1));
    const pl = document.createElementNS(ns, "polyline");
    pl.setAttribute("class", s);
    pl.setAttribute("points", pts.join(" "));
    pl.setAttribute("data-points", String(m.length));
    lines.push(pl);
  }
  svg.replaceChildren(...lines);
  svg.setAttribute("data-max", String(max));
  svg.setAttribute("data-step", String(step));
}

function render(c) {
  const now = Date.parse(c.time) / 1000;
  text("generation", c.generation);
  text("queue-size", c.queue_size);
  text("connections", c.connections);
  text("as-of", c.time);
  const r = c.throughput;
  for (const k of ["received", "delivered", "deferred", "bounced"]) {
    text("rate-" + k, rate(lastMinute(r[k] || [])));
    text("total-" + k, String(Math.round(r.totals[k])));
  }
  const errs = document.getElementById("reload-errors");
  errs.replaceChildren(...(c.last_reload_errors || []).map((e) => { const li = document.createElement("li"); li.textContent = e; return li; }));
  rows("providers", c.providers, (tr, p) => {
    tr.dataset.provider = p.provider;
    cell(tr, "key", p.provider); cell(tr, "sites", p.sites); cell(tr, "queued", p.queued);
    cell(tr, "oldest", age(p.oldest_seconds)); cell(tr, "conns", p.connections);
    cell(tr, "delivered", rate(p.delivered_per_second)); cell(tr, "deferred", rate(p.deferred_per_second));
    cell(tr, "bounced", rate(p.bounced_per_second));
    const cls = cell(tr, "classes", "");
    for (const k of Object.keys(p.classes || {}).sort()) {
      const s = document.createElement("span"); s.textContent = k + ": " + p.classes[k]; cls.append(s, " ");
    }
    const ol = document.createElement("ol");
    for (const d of p.top_deferrals || []) {
      const li = document.createElement("li"); const b = document.createElement("b");
      b.textContent = d.count; li.append(b, " " + d.text); ol.appendChild(li);
    }
    cell(tr, "texts", "").appendChild(ol);
  });
  rows("sites", c.sites, (tr, s) => {
    tr.dataset.site = s.site;
    cell(tr, "key", s.site); cell(tr, "provider", s.provider || ""); cell(tr, "queued", s.queued);
    cell(tr, "oldest", age(s.oldest_seconds)); cell(tr, "conns", s.connections);
    cell(tr, "delivered", rate(s.delivered_per_second)); cell(tr, "deferred", rate(s.deferred_per_second));
    cell(tr, "bounced", rate(s.bounced_per_second));
    const td = cell(tr, "act", "");
    if (s.queued > 0) button(td, "retry now", () => act("POST", "/api/v1/messages/bulk", { action: "retry", filter: { site: s.site } }, "retry " + s.site));
  });
  rows("suspensions", c.suspensions, (tr, s) => {
    tr.dataset.scope = s.scope; tr.dataset.key = s.key;
    cell(tr, "", s.scope); cell(tr, "key", s.key); cell(tr, "left", age(Date.parse(s.until) / 1000 - now));
    cell(tr, "origin", s.origin || ""); cell(tr, "reason", s.reason || "");
    button(cell(tr, "act", ""), "resume", () => act("DELETE", "/api/v1/suspensions/" + encodeURIComponent(s.scope) + "/" + encodeURIComponent(s.key), null, "resume " + s.key));
  });
  rows("throttles", c.throttles, (tr, t) => {
    tr.dataset.scope = t.scope; tr.dataset.key = t.key;
    cell(tr, "", t.scope); cell(tr, "key", t.key); cell(tr, "left", age(Date.parse(t.until) / 1000 - now));
    cell(tr, "rule", t.rule || ""); cell(tr, "", t.max_connections || 0); cell(tr, "", t.message_rate || "");
  });
  rows("listeners", c.listeners, (tr, l) => {
    tr.dataset.listener = l.name;
    cell(tr, "", l.name); cell(tr, "", l.addr); cell(tr, "", l.mode); cell(tr, "conns", l.connections);
  });
  chart(r);
}

async function poll() {
  try {
    const res = await fetch("/api/v1/console", { headers: headers(false), cache: "no-store" });
    if (!res.ok) throw new Error(res.status + " " + res.statusText);
    render(await res.json());
    polls++;
    document.body.dataset.live = "yes";
    document.body.dataset.polls = String(polls);
    text("live", "live");
  } catch (e) {
    document.body.dataset.live = "no";
    text("live", "not refreshed: " + e.message);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const t = document.getElementById("token");
  t.value = token();
  t.addEventListener("change", () => { sessionStorage.setItem("cuemta-token", t.value); poll(); });
  poll();
  setInterval(poll, POLL_MS);
});
