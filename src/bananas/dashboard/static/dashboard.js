// Bananas dashboard: plain JavaScript, no build step, no dependencies.
// Each page is a shell; this script fetches its data from the JSON API (server-side
// filtered and paged) and refreshes it every data-refresh-ms milliseconds.
"use strict";

(function () {
  const body = document.body;
  const BASE = body.dataset.base || "";
  const PAGE = body.dataset.page;
  const REFRESH_MS = parseInt(body.dataset.refreshMs || "1000", 10);
  const PUBLIC_READ = body.dataset.publicRead === "true";
  const TOKEN_KEY = "bananas-api-token";

  // -- the token: from "#token=..." in the printed URL (never sent to the server in a
  // URL, so it appears in no access log), kept in this browser's local storage.
  const hash = new URLSearchParams(location.hash.slice(1));
  if (hash.get("token")) {
    localStorage.setItem(TOKEN_KEY, hash.get("token"));
    history.replaceState(null, "", location.pathname + location.search);
  }
  const token = () => localStorage.getItem(TOKEN_KEY) || "";

  function showAuth() {
    const state = document.getElementById("auth-state");
    const form = document.getElementById("token-form");
    state.textContent = "";
    if (token()) {
      state.append(h("span", { class: "ok" }, "token set"), " ", h("button", { type: "button", onclick: toggleForm }, "change"));
    } else {
      state.append(h("span", { class: "warn" }, PUBLIC_READ ? "read-only (no token)" : "no token"), " ",
        h("button", { type: "button", onclick: toggleForm }, "enter token"));
      if (!PUBLIC_READ) form.hidden = false;
    }
  }
  function toggleForm() { const f = document.getElementById("token-form"); f.hidden = !f.hidden; }
  document.querySelector("#token-form form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const value = ev.target.elements.token.value.trim();
    if (value) localStorage.setItem(TOKEN_KEY, value);
    ev.target.reset();
    document.getElementById("token-form").hidden = true;
    showAuth();
    refresh();
  });
  document.getElementById("forget-token").addEventListener("click", () => {
    localStorage.removeItem(TOKEN_KEY);
    showAuth();
  });

  // -- helpers ------------------------------------------------------------------------
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (k === "dataset") Object.assign(el.dataset, v);
      else el.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  async function api(method, path, payload) {
    const headers = { Accept: "application/json" };
    if (token()) headers.Authorization = "Bearer " + token();
    const init = { method, headers };
    if (payload !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(payload);
    }
    const res = await fetch(BASE + "/api/v1" + path, init);
    let data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    return { status: res.status, ok: res.ok, data };
  }

  function flash(text, kind) {
    const el = document.getElementById("flash");
    el.textContent = text;
    el.className = "flash " + (kind || "info");
    el.hidden = false;
    clearTimeout(flash.timer);
    flash.timer = setTimeout(() => { el.hidden = true; }, 6000);
  }

  // A write: reports the answer, refused writes included (401 without the token).
  async function act(method, path, payload, done) {
    const res = await api(method, path, payload);
    if (res.status === 401) flash("Refused: this action needs the API token (401). " + (res.data && res.data.detail || ""), "error");
    else if (!res.ok) flash((res.data && res.data.detail) || ("failed: HTTP " + res.status), "error");
    else flash(done, "ok");
    refresh();
    return res;
  }

  function age(seconds) {
    if (seconds === null || seconds === undefined || isNaN(seconds)) return "–";
    seconds = Math.max(0, seconds);
    if (seconds < 60) return seconds.toFixed(seconds < 10 ? 1 : 0) + " s";
    if (seconds < 3600) return Math.floor(seconds / 60) + " min " + Math.floor(seconds % 60) + " s";
    if (seconds < 86400) return Math.floor(seconds / 3600) + " h " + Math.floor((seconds % 3600) / 60) + " min";
    return Math.floor(seconds / 86400) + " d " + Math.floor((seconds % 86400) / 3600) + " h";
  }
  // Seconds since a time given as Unix seconds or RFC 3339 text.
  function since(value) {
    if (value === null || value === undefined || value === "") return null;
    const t = typeof value === "number" ? value * 1000 : Date.parse(value);
    return isNaN(t) ? null : (Date.now() - t) / 1000;
  }
  const fmtNum = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en"));

  function sparkline(points) {
    const w = 120, hgt = 24;
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("width", w); svg.setAttribute("height", hgt); svg.setAttribute("class", "spark");
    const values = (points || []).map(Number);
    const max = Math.max(1, ...values);
    const step = values.length > 1 ? w / (values.length - 1) : w;
    const path = values.map((v, i) => (i ? "L" : "M") + (i * step).toFixed(1) + " " + (hgt - 2 - (v / max) * (hgt - 4)).toFixed(1)).join(" ");
    const p = document.createElementNS(ns, "path");
    p.setAttribute("d", path || "M0 " + (hgt - 2) + " L" + w + " " + (hgt - 2));
    svg.append(p);
    const title = document.createElementNS(ns, "title");
    title.textContent = "jobs done per minute, oldest first: " + values.join(", ");
    svg.append(title);
    return svg;
  }

  function pager(state, total, onChange) {
    const el = document.getElementById("pager");
    el.textContent = "";
    const from = total ? state.offset + 1 : 0;
    const to = Math.min(state.offset + state.limit, total);
    el.append(
      h("button", { type: "button", disabled: state.offset === 0, onclick: () => { state.offset = Math.max(0, state.offset - state.limit); onChange(); } }, "‹ previous"),
      h("span", {}, ` ${from}–${to} of ${fmtNum(total)} `),
      h("button", { type: "button", disabled: to >= total, onclick: () => { state.offset += state.limit; onChange(); } }, "next ›"),
    );
  }

  function filtersOf(form) {
    const out = {};
    for (const el of form.elements) {
      if (!el.name) continue;
      if (el.type === "checkbox") { if (el.checked) out[el.name] = "true"; }
      else if (el.value.trim()) out[el.name] = el.value.trim();
    }
    return out;
  }
  function query(params) {
    const q = new URLSearchParams(params).toString();
    return q ? "?" + q : "";
  }
  function failed(res, table) {
    const tbody = document.querySelector(table + " tbody");
    const cols = document.querySelectorAll(table + " thead th").length;
    tbody.textContent = "";
    const why = res.status === 401 ? "This page needs the API token (enter it above)." : ((res.data && res.data.detail) || "HTTP " + res.status);
    tbody.append(h("tr", {}, h("td", { colspan: cols, class: "error" }, why)));
  }
  function stamp() {
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
  }
  function jobLink(id) { return h("a", { href: BASE + "/jobs/" + encodeURIComponent(id) }, id); }

  // -- pages --------------------------------------------------------------------------
  const state = { offset: 0, limit: 100 };
  const pages = {};

  pages.overview = async function () {
    const form = document.getElementById("filters");
    const res = await api("GET", "/overview" + query({ ...filtersOf(form), offset: state.offset, limit: state.limit }));
    if (!res.ok) return failed(res, "#routes");
    const d = res.data;
    const problems = document.getElementById("problems");
    problems.textContent = "";
    if (d.problems.length === 0) problems.append(h("p", { class: "ok" }, "No problems: every routing key with waiting jobs has a live worker."));
    else {
      problems.append(h("h2", {}, `Problems (${d.problems_total})`));
      problems.append(h("ul", {}, d.problems.map((p) => h("li", { class: "problem " + p.kind, dataset: { kind: p.kind, routingKey: p.routing_key || "" } }, h("span", { class: "tag" }, p.kind.replace("_", " ")), " ", p.message))));
    }
    const t = d.totals;
    const totals = document.getElementById("totals");
    totals.textContent = "";
    for (const [label, value, id] of [["routing keys", t.routes, "routes"], ["ready", t.ready, "ready"], ["in flight", t.in_flight, "in_flight"], ["scheduled", t.scheduled, "scheduled"], ["dead", t.dead, "dead"], ["workers", t.workers, "workers"]]) {
      totals.append(h("div", { class: "total", dataset: { total: id } }, h("strong", {}, fmtNum(value)), h("span", {}, label)));
    }
    const tbody = document.querySelector("#routes tbody");
    tbody.textContent = "";
    for (const r of d.routes) {
      const cells = d.priorities.map((p) => {
        const c = r.priorities[p] || { ready: 0 };
        return h("td", { class: "num" + (c.paused ? " paused" : ""), dataset: { col: "ready-" + p }, title: c.oldest_age_seconds != null ? "oldest " + age(c.oldest_age_seconds) : null }, fmtNum(c.ready), c.paused ? h("span", { class: "flag paused" }, "paused") : "");
      });
      const flags = [];
      if (r.orphaned) flags.push(h("span", { class: "flag orphaned" }, "no worker"));
      if (r.paused) flags.push(h("span", { class: "flag paused" }, "paused"));
      const action = r.paused
        ? h("button", { type: "button", class: "resume", onclick: () => act("POST", `/routes/${encodeURIComponent(r.routing_key)}/resume`, {}, `${r.routing_key} resumed`) }, "Resume")
        : h("button", { type: "button", class: "pause", onclick: () => act("POST", `/routes/${encodeURIComponent(r.routing_key)}/pause`, {}, `${r.routing_key} paused`) }, "Pause");
      tbody.append(h("tr", { dataset: { routingKey: r.routing_key }, class: r.orphaned ? "orphaned" : (r.paused ? "paused" : "") },
        h("th", { scope: "row" }, r.routing_key, " ", flags),
        cells,
        h("td", { class: "num", dataset: { col: "ready" } }, fmtNum(r.ready)),
        h("td", { class: "num", dataset: { col: "in_flight" } }, fmtNum(r.in_flight)),
        h("td", { class: "num", dataset: { col: "consumers" } }, fmtNum(r.consumers)),
        h("td", { class: "num", dataset: { col: "oldest" } }, age(r.oldest_age_seconds)),
        h("td", { dataset: { col: "throughput" } }, sparkline(r.throughput)),
        h("td", {}, action)));
    }
    pager(state, d.routes_total, refresh);
    stamp();
  };

  pages.workers = async function () {
    const res = await api("GET", "/workers" + query({ ...filtersOf(document.getElementById("filters")), offset: state.offset, limit: state.limit }));
    if (!res.ok) return failed(res, "#workers");
    const tbody = document.querySelector("#workers tbody");
    tbody.textContent = "";
    for (const w of res.data.items) {
      tbody.append(h("tr", { dataset: { workerId: w.id } },
        h("td", {}, w.id), h("td", {}, w.host), h("td", { class: "num" }, w.pid),
        h("td", {}, (w.routing_keys || []).join(" › ")), h("td", {}, (w.priorities || []).join(" › ")),
        h("td", { class: "num" }, w.concurrency), h("td", { class: "num" }, w.running),
        h("td", { class: "num" }, fmtNum(w.processed)), h("td", { class: "num" }, fmtNum(w.failed)),
        h("td", { class: "num" }, age(since(w.heartbeat_at))), h("td", {}, w.mode)));
    }
    pager(state, res.data.total, refresh);
    stamp();
  };

  pages.running = async function () {
    const res = await api("GET", "/running" + query({ ...filtersOf(document.getElementById("filters")), offset: state.offset, limit: state.limit }));
    if (!res.ok) return failed(res, "#running");
    const tbody = document.querySelector("#running tbody");
    tbody.textContent = "";
    for (const r of res.data.items) {
      const left = since(r.lease_deadline);
      tbody.append(h("tr", { dataset: { jobId: r.job_id } },
        h("td", {}, jobLink(r.job_id)), h("td", {}, r.name), h("td", {}, r.routing_key), h("td", {}, r.priority),
        h("td", { class: "num" }, r.attempt), h("td", {}, r.worker_id), h("td", { class: "num" }, age(since(r.started_at))),
        h("td", { class: "num" }, left === null ? "–" : age(-left)),
        h("td", {}, h("button", { type: "button", onclick: () => act("POST", `/jobs/${encodeURIComponent(r.job_id)}/cancel`, undefined, `cancel of ${r.job_id} requested`) }, "Cancel"))));
    }
    pager(state, res.data.total, refresh);
    stamp();
  };

  pages.job = async function () {
    const id = body.dataset.jobId;
    const box = document.getElementById("job");
    if (!id) { box.textContent = ""; box.append(h("p", { class: "muted" }, "Enter a job id to see where it is now and why.")); stamp(); return; }
    const res = await api("GET", "/jobs/" + encodeURIComponent(id));
    box.textContent = "";
    if (res.status === 404) { box.append(h("p", { class: "error" }, res.data.detail)); stamp(); return; }
    if (!res.ok) { box.append(h("p", { class: "error" }, res.status === 401 ? "This page needs the API token." : (res.data && res.data.detail) || "HTTP " + res.status)); return; }
    const j = res.data;
    const loc = j.location || {};
    box.append(h("p", { class: "where", dataset: { place: loc.place || "" } }, h("strong", {}, (loc.place || j.status) + ": "), loc.reason || "", loc.until ? ` (until ${loc.until})` : ""));
    const fields = ["id", "name", "status", "routing_key", "priority", "attempts", "max_retries", "created_at", "updated_at", "scheduled_for", "expires_at", "description"];
    box.append(h("table", { class: "fields" }, fields.filter((f) => j[f] !== undefined && j[f] !== null).map((f) => h("tr", {}, h("th", {}, f), h("td", { dataset: { field: f } }, String(j[f]))))));
    if (["pending", "scheduled", "processing"].includes(j.status)) {
      box.append(h("button", { type: "button", onclick: () => act("POST", `/jobs/${encodeURIComponent(id)}/cancel`, undefined, "cancel requested") }, "Cancel job"));
    }
    if (j.error) box.append(h("h3", {}, "Error and traceback"), h("pre", { class: "error" }, j.error));
    box.append(h("h3", {}, "Payload"), h("pre", {}, JSON.stringify(j.payload, null, 2)));
    const result = await api("GET", "/jobs/" + encodeURIComponent(id) + "/result");
    if (result.ok && result.data.finished) {
      box.append(h("h3", {}, result.data.error ? "Result (failed)" : "Result"), h("pre", { dataset: { field: "result" } }, result.data.error ? result.data.error : JSON.stringify(result.data.result, null, 2)));
    }
    const extra = Object.keys(j).filter((k) => !fields.includes(k) && !["payload", "error", "location"].includes(k));
    if (extra.length) box.append(h("h3", {}, "Other fields"), h("pre", {}, JSON.stringify(Object.fromEntries(extra.map((k) => [k, j[k]])), null, 2)));
    stamp();
  };

  const dead = { cursors: [0] };
  pages.dead = async function () {
    const filters = filtersOf(document.getElementById("filters"));
    const cursor = dead.cursors[dead.cursors.length - 1];
    const res = await api("GET", "/dead" + query({ ...filters, cursor, limit: 50 }));
    if (!res.ok) return failed(res, "#dead");
    document.getElementById("dead-total").textContent = `${fmtNum(res.data.total)} dead letter(s) in all`;
    const tbody = document.querySelector("#dead tbody");
    tbody.textContent = "";
    for (const e of res.data.items) {
      tbody.append(h("tr", { dataset: { jobId: e.id } },
        h("td", {}, jobLink(e.id)), h("td", {}, e.name), h("td", {}, e.routing_key), h("td", {}, e.priority),
        h("td", { class: "num" }, e.attempts), h("td", { class: "err" }, e.error), h("td", {}, e.failed_at),
        h("td", {},
          h("button", { type: "button", class: "retry", onclick: () => act("POST", `/dead/${encodeURIComponent(e.id)}/retry`, undefined, `${e.id} sent back to its queue`) }, "Retry"), " ",
          h("button", { type: "button", class: "danger delete", onclick: () => act("DELETE", `/dead/${encodeURIComponent(e.id)}`, undefined, `${e.id} deleted`) }, "Delete"))));
    }
    const el = document.getElementById("pager");
    el.textContent = "";
    el.append(
      h("button", { type: "button", disabled: dead.cursors.length === 1, onclick: () => { dead.cursors.pop(); refresh(); } }, "‹ previous"),
      " ",
      h("button", { type: "button", disabled: res.data.next_cursor === null, onclick: () => { dead.cursors.push(res.data.next_cursor); refresh(); } }, "next ›"));
    stamp();
  };
  if (PAGE === "dead") {
    document.getElementById("purge").addEventListener("click", () => {
      const filters = filtersOf(document.getElementById("filters"));
      const what = Object.keys(filters).length ? "the dead letters matching the filters" : "ALL dead letters";
      if (confirm(`Delete ${what} with their records?`)) act("POST", "/dead/purge", filters, "purged");
    });
  }

  pages.schedules = async function () {
    const res = await api("GET", "/schedules" + query({ offset: state.offset, limit: state.limit }));
    if (!res.ok) return failed(res, "#schedules");
    const tbody = document.querySelector("#schedules tbody");
    tbody.textContent = "";
    for (const s of res.data.items) {
      tbody.append(h("tr", { dataset: { scheduleId: s.id } },
        h("td", {}, s.id), h("td", {}, h("code", {}, s.cron)), h("td", {}, s.timezone), h("td", {}, s.job),
        h("td", {}, s.routing_key), h("td", {}, s.priority), h("td", {}, s.next_run || "–"), h("td", {}, s.last_run || "–"),
        h("td", { class: "num" }, s.run_count), h("td", { class: "err" }, s.last_error || "")));
    }
    pager(state, res.data.total, refresh);
    stamp();
  };

  pages.limits = async function () {
    const res = await api("GET", "/limits");
    if (!res.ok) return failed(res, "#route-limits");
    const routes = document.querySelector("#route-limits tbody");
    routes.textContent = "";
    for (const r of res.data.routes) {
      routes.append(h("tr", { dataset: { routingKey: r.routing_key } }, h("td", {}, r.routing_key), h("td", { class: "num" }, r.concurrency ?? "–"),
        h("td", { class: "num" + (r.concurrency && r.in_flight >= r.concurrency ? " warn" : "") }, r.in_flight), h("td", {}, r.rate || "–")));
    }
    if (!res.data.routes.length) routes.append(h("tr", {}, h("td", { colspan: 4, class: "muted" }, "no routing key limits")));
    const jobs = document.querySelector("#job-limits tbody");
    jobs.textContent = "";
    for (const j of res.data.jobs) jobs.append(h("tr", {}, h("td", {}, j.name), h("td", {}, j.rate)));
    if (!res.data.jobs.length) jobs.append(h("tr", {}, h("td", { colspan: 2, class: "muted" }, "no job name limits")));
    stamp();
  };

  // -- wiring -------------------------------------------------------------------------
  let busy = false;
  async function refresh() {
    if (busy || !pages[PAGE]) return;
    busy = true;
    try { await pages[PAGE](); }
    catch (e) { document.getElementById("updated").textContent = "update failed: " + e.message; }
    finally { busy = false; }
  }
  const filters = document.getElementById("filters");
  if (filters) {
    filters.addEventListener("input", () => { state.offset = 0; dead.cursors = [0]; refresh(); });
    filters.addEventListener("submit", (ev) => ev.preventDefault());
  }
  const search = document.getElementById("search");
  if (search) {
    search.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const id = ev.target.elements.id.value.trim();
      if (id) location.href = BASE + "/jobs/" + encodeURIComponent(id);
    });
  }
  showAuth();
  refresh();
  setInterval(refresh, REFRESH_MS);
})();
