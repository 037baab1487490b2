// autopeft dashboard: studies, and per study the Pareto front of task metric vs trained parameters.
// Plain JavaScript and SVG, no third-party code: the page works on machines without internet.
"use strict";

const API = "api/v1";
const KEY = "autopeft.apiKey";
const REFRESH_MS = 5000;
const FLOOR = 1e-6; // fractions are floored before the log, as the server does
const app = document.getElementById("app");
const statusEl = document.getElementById("status");
let timer = null;
let view = { studyId: null, selected: null, sort: { key: "metric", dir: -1 }, data: null };

// ---------------------------------------------------------------------------------- API access
class HttpError extends Error {
  constructor(status, detail) { super(detail); this.status = status; }
}

async function api(path, method = "GET") {
  const key = sessionStorage.getItem(KEY);
  const headers = key ? { Authorization: `Bearer ${key}` } : {};
  const response = await fetch(`${API}${path}`, { headers, method });
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail || detail; } catch (e) { /* not JSON */ }
    throw new HttpError(response.status, detail);
  }
  return response.json();
}

async function allTrials(id) {
  const out = [];
  for (let offset = 0; ; offset += 500) {
    const page = await api(`/studies/${id}/trials?limit=500&offset=${offset}`);
    out.push(...page.data);
    if (out.length >= page.count || page.data.length === 0) return out;
  }
}

document.getElementById("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const value = document.getElementById("api-key").value.trim();
  if (value) sessionStorage.setItem(KEY, value); else sessionStorage.removeItem(KEY);
  route();
});

// ---------------------------------------------------------------------------------- helpers
function el(tag, attrs = {}, ...children) {
  const svg = ["svg", "g", "line", "path", "circle", "rect", "text", "polyline", "title"].includes(tag);
  const node = svg ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const fmt = {
  metric: (v) => (v === null || v === undefined ? "–" : v.toFixed(4)),
  pct: (f) => (f === null || f === undefined ? "–" : `${(100 * f).toPrecision(3)}%`),
  int: (n) => (n === null || n === undefined ? "–" : n.toLocaleString("en-US")),
  hv: (v) => (v === null || v === undefined ? "–" : v.toFixed(3)),
  secs: (s) => {
    if (s === null || s === undefined) return "–";
    if (s < 90) return `${Math.round(s)} s`;
    if (s < 5400) return `${Math.round(s / 60)} min`;
    return `${(s / 3600).toFixed(1)} h`;
  },
};

function objectives(t) {
  return [t.metric, -Math.log10(Math.max(t.param_fraction, FLOOR))];
}

/** Non-dominated trials among completed ones (maximise metric, minimise fraction). */
function paretoFront(trials) {
  const done = trials.filter((t) => t.state === "completed");
  return done.filter((a) => {
    const [a1, a2] = objectives(a);
    return !done.some((b) => {
      if (b === a) return false;
      const [b1, b2] = objectives(b);
      return b1 >= a1 && b2 >= a2 && (b1 > a1 || b2 > a2 || b.id < a.id);
    });
  });
}

/** 2-D hypervolume above the study's reference (its metric's lowest value, 100% of the parameters). */
function hypervolume(trials, floor = 0) {
  const pts = trials.map(objectives).filter(([m, c]) => m > floor && c > 0).sort((a, b) => b[1] - a[1]);
  let best = floor, area = 0;
  for (const [m, c] of pts) if (m > best) { area += (m - best) * c; best = m; }
  return area;
}

// ---------------------------------------------------------------------------------- routing
window.addEventListener("hashchange", route);
route();

async function route() {
  clearInterval(timer);
  const match = location.hash.match(/^#\/study\/(\d+)/);
  view.studyId = match ? Number(match[1]) : null;
  view.selected = null;
  await refresh(true);
  timer = setInterval(() => { if (!document.hidden) refresh(false); }, REFRESH_MS);
}

async function refresh(first) {
  try {
    if (view.studyId === null) await renderStudies(); else await renderStudy(view.studyId, first);
    statusEl.textContent = `updated ${new Date().toLocaleTimeString()}`;
    statusEl.className = "";
  } catch (err) {
    if (err instanceof HttpError && err.status === 401) {
      clearInterval(timer);
      app.replaceChildren(el("p", { class: "error", id: "auth-error" },
        "The server needs an API key: enter it above (it is kept for this browser session only)."));
      statusEl.textContent = "";
      return;
    }
    statusEl.textContent = `not updated: ${err.message}`;
    statusEl.className = "error";
  }
}

// ---------------------------------------------------------------------------------- studies
async function renderStudies() {
  const page = await api("/studies?limit=500");
  const rows = page.data.map((s) => el("tr", { class: "clickable", "data-study-id": s.id,
    onclick: () => { location.hash = `#/study/${s.id}`; } },
    el("td", {}, el("a", { href: `#/study/${s.id}` }, s.name)),
    el("td", {}, s.task.name || "custom"),
    el("td", {}, s.model || "bundled MiniLM"),
    el("td", {}, s.space_name),
    el("td", {}, el("span", { class: `state state-${s.state}` }, s.state)),
    el("td", { class: "num" },
      `${s.counts.queued} / ${s.counts.running} / ${s.counts.completed} / ${s.counts.failed} / ${s.counts.stopped || 0}`),
    el("td", { class: "num" }, fmt.metric(s.best_metric)),
    el("td", { class: "num" }, fmt.hv(s.hypervolume)),
    el("td", { class: "num" }, fmt.secs(s.elapsed_s))));
  app.replaceChildren(
    el("h1", {}, "Studies"),
    page.data.length === 0
      ? el("p", { class: "muted" }, "No studies yet. Create one with `autopeft study create` or POST /api/v1/studies.")
      : el("table", { id: "studies" },
        el("thead", {}, el("tr", {}, ["name", "task", "model", "space", "state"].map((h) => el("th", {}, h)),
          el("th", { class: "num", title: "queued / running / completed / failed / stopped early" }, "trials q/r/c/f/s"),
          el("th", { class: "num" }, "best metric"), el("th", { class: "num" }, "hypervolume"),
          el("th", { class: "num" }, "elapsed"))),
        el("tbody", {}, rows)));
}

// ---------------------------------------------------------------------------------- one study
async function renderStudy(id, first) {
  const [study, trials] = await Promise.all([api(`/studies/${id}`), allTrials(id)]);
  view.data = { study, trials };
  const front = paretoFront(trials);
  const metricName = study.task.metric || "metric";
  if (!first && view.selected && !trials.some((t) => t.id === view.selected)) view.selected = null;
  app.replaceChildren(...[ // replaceChildren writes a null as the text "null": parts a study lacks are left out
    el("p", {}, el("a", { href: "#/" }, "← all studies")),
    el("h1", { id: "study-title" }, study.name),
    el("p", { class: "muted", id: "study-summary" },
      `${study.task.name || "custom task"} · ${study.model || "bundled MiniLM"} · space ${study.space_name} (d=${study.d ?? "?"}) · `,
      el("span", { class: `state state-${study.state}` }, study.state),
      ` · ${study.counts.completed} completed, ${study.counts.running} running, ${study.counts.queued} queued, ` +
      `${study.counts.failed} failed, ${study.counts.stopped || 0} stopped early of ${study.max_trials} · ` +
      `best ${metricName} ${fmt.metric(study.best_metric)} · ` +
      `hypervolume ${fmt.hv(study.hypervolume)} · ${fmt.secs(study.elapsed_s)}`),
    warmStartNote(study),
    pausedBanner(study),
    el("div", { class: "grid" },
      el("div", { class: "card" },
        el("h2", {}, `${metricName} vs trained parameters`),
        scatter(trials, front, metricName, study.constraints),
        el("div", { class: "legend" },
          el("span", {}, el("i", { style: "background:#2f6fde;opacity:.6" }), "completed"),
          el("span", {}, el("i", { style: "background:#d9480f" }), "Pareto front"),
          el("span", {}, el("i", { style: "border:1.5px solid #7a56c4" }), "running"),
          el("span", { title: "ended by the study's early-stopping rule: the metric is partial, not on the front" },
            el("i", { style: "border:1.5px solid #8a8f99;border-radius:0" }), "stopped early"),
          el("span", {}, el("i", { style: "background:#222" }), "baseline"),
          trials.some((t) => t.source === "warm_start")
            ? el("span", { id: "legend-warm-start", title: "an earlier study's front configuration, trained again on this task" },
              el("i", { style: "border:2px solid #2b8a3e" }), "warm start")
            : null)),
      el("div", { class: "card", id: "details" }, details(trials, study))),
    el("div", { class: "card" }, el("h2", {}, "Hypervolume over trials"), hvChart(trials, study.reference ? study.reference.metric : 0)),
    el("h2", {}, `Pareto front (${front.length})`),
    frontTable(front, study, metricName),
    failuresTable(study)].filter((part) => part !== null));
}

/** Which studies this one started from (links), and how many of its trials re-evaluate their fronts. */
function warmStartNote(study) {
  const warm = study.warm_start;
  if (!warm) return null;
  const sources = warm.sources || warm.studies.map((id) => ({ id, name: null }));
  const links = [];
  sources.forEach((s, i) => {
    if (i) links.push(", ");
    links.push(s.name === null && warm.sources
      ? el("span", { class: "muted" }, `#${s.id} (deleted)`)
      : el("a", { href: `#/study/${s.id}`, "data-study-id": s.id }, `#${s.id}${s.name ? " " + s.name : ""}`));
    if (s.task) links.push(el("span", { class: "muted" }, ` (${s.task}, ${s.state})`));
  });
  const configs = warm.configs === null || warm.configs === undefined ? ""
    : ` · ${warm.configs} front configuration${warm.configs === 1 ? "" : "s"} of theirs trained again on this task ` +
      `(at most ${warm.max_configs ?? "n_initial"}); their own results never count here`;
  return el("p", { id: "warm-start" }, el("strong", {}, "Warm start from "), ...links, configs);
}

/** A paused or stopped study says why and offers Resume (a POST from this page, the server's own origin). */
function pausedBanner(study) {
  if (study.state !== "paused" && study.state !== "stopped") return null;
  const button = el("button", { id: "resume", type: "button", onclick: async () => {
    button.disabled = true;
    try { await api(`/studies/${study.id}/resume`, "POST"); } catch (e) { statusEl.textContent = e.message; }
    route();
  } }, "Resume");
  if (study.state === "stopped") {
    return el("div", { class: "card paused", id: "stopped" },
      el("strong", {}, "Stopped: "), `no trials are proposed or handed out; ${study.counts.queued} queued ` +
      `trial${study.counts.queued === 1 ? "" : "s"} wait.`,
      el("p", { class: "muted" }, "Resume hands them out again and proposes the rest of the budget."), button);
  }
  return el("div", { class: "card paused", id: "paused" },
    el("strong", {}, "Paused: "), study.pause_reason || "repeated failures",
    el("p", { class: "muted" }, "No trials are proposed or handed out. Fix the workers (autopeft worker --check " +
      "names a family this environment breaks), then resume."), button);
}

function failuresTable(study) {
  const groups = study.failures || [];
  if (!groups.length) return null;
  const total = groups.reduce((n, g) => n + g.count, 0);
  return el("div", { id: "failures" },
    el("h2", {}, `Failures (${total} trial${total === 1 ? "" : "s"}, ${groups.length} cause${groups.length === 1 ? "" : "s"})`),
    el("table", {},
      el("thead", {}, el("tr", {}, el("th", { class: "num" }, "count"), el("th", { class: "num" }, "first #"),
        el("th", {}, "worker"), el("th", {}, "error"))),
      el("tbody", {}, groups.map((g) => el("tr", {},
        el("td", { class: "num" }, g.count), el("td", { class: "num" }, g.first_trial_number),
        el("td", {}, g.worker_id || ""), el("td", {}, el("code", {}, g.error)))))));
}

// ---------------------------------------------------------------------------------- charts
const W = 640, H = 380, M = { l: 56, r: 16, t: 12, b: 44 };

function logTicks(lo, hi) {
  const ticks = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) ticks.push(10 ** e);
  return ticks.filter((t) => t >= lo * 0.999 && t <= hi * 1.001);
}

function linTicks(lo, hi, n = 5) {
  const step = 10 ** Math.floor(Math.log10((hi - lo) / n || 1));
  const nice = [1, 2, 5, 10].map((k) => k * step).find((s) => (hi - lo) / s <= n) || step * 10;
  const out = [];
  for (let v = Math.ceil(lo / nice) * nice; v <= hi + 1e-12; v += nice) out.push(Number(v.toFixed(10)));
  return out;
}

/** Tick labels with as many decimals as the ticks' step needs (at least two): a narrow range of 0.485, 0.49, 0.495
 * reads as such, never as 0.49 three times. */
function tickFormat(ticks) {
  const step = ticks.length > 1 ? Math.abs(ticks[1] - ticks[0]) : 1;
  const digits = Math.min(10, Math.max(2, -Math.floor(Math.log10(step) + 1e-9)));
  return (t) => t.toFixed(digits);
}

function axes(svg, x, y, xticks, yticks, xfmt, yfmt, xlabel, ylabel) {
  const g = el("g", { class: "axis" });
  for (const t of xticks) {
    g.append(el("line", { class: "gridline", x1: x(t), x2: x(t), y1: M.t, y2: H - M.b }));
    g.append(el("text", { x: x(t), y: H - M.b + 16, "text-anchor": "middle" }, xfmt(t)));
  }
  for (const t of yticks) {
    g.append(el("line", { class: "gridline", x1: M.l, x2: W - M.r, y1: y(t), y2: y(t) }));
    g.append(el("text", { x: M.l - 6, y: y(t) + 4, "text-anchor": "end" }, yfmt(t)));
  }
  g.append(el("line", { x1: M.l, x2: W - M.r, y1: H - M.b, y2: H - M.b }));
  g.append(el("line", { x1: M.l, x2: M.l, y1: M.t, y2: H - M.b }));
  g.append(el("text", { x: (M.l + W - M.r) / 2, y: H - 6, "text-anchor": "middle" }, xlabel));
  g.append(el("text", { x: 14, y: (M.t + H - M.b) / 2, transform: `rotate(-90 14 ${(M.t + H - M.b) / 2})`,
    "text-anchor": "middle" }, ylabel));
  svg.append(g);
}

function xOf(t) {
  const f = t.param_fraction ?? t.estimated_param_fraction;
  return f === null || f === undefined ? null : Math.max(f, FLOOR) * 100;
}

/** The study's parameter budget as vertical lines at its bounds, in % (empty without one). */
function budgetLines(constraints) {
  if (!constraints) return [];
  const lines = [];
  if (constraints.max_param_fraction != null) lines.push({ at: constraints.max_param_fraction * 100, text: "budget max" });
  if (constraints.min_param_fraction) lines.push({ at: constraints.min_param_fraction * 100, text: "budget min" });
  return lines;
}

function scatter(trials, front, metricName, constraints) {
  const done = trials.filter((t) => t.state === "completed");
  const running = trials.filter((t) => t.state === "running" && xOf(t) !== null);
  const stopped = trials.filter((t) => t.state === "stopped" && xOf(t) !== null && t.metric !== null);
  const xs = [...done, ...running, ...stopped].map(xOf).filter((v) => v !== null);
  const ys = [...done, ...stopped].map((t) => t.metric);
  const svg = el("svg", { id: "scatter", viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img",
    "aria-label": `${metricName} against trained parameters` });
  if (xs.length === 0) {
    svg.append(el("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "no completed trials yet"));
    return svg;
  }
  const budget = budgetLines(constraints);
  const spread = [...xs, ...budget.map((b) => b.at)];
  let xlo = Math.min(...spread) / 1.6, xhi = Math.max(...spread) * 1.6;
  let ylo = ys.length ? Math.min(...ys) : 0, yhi = ys.length ? Math.max(...ys) : 1;
  const pad = (yhi - ylo) * 0.08 || 0.05;
  ylo -= pad; yhi += pad;
  const x = (v) => M.l + (Math.log10(v) - Math.log10(xlo)) / (Math.log10(xhi) - Math.log10(xlo)) * (W - M.l - M.r);
  const y = (v) => H - M.b - (v - ylo) / (yhi - ylo) * (H - M.t - M.b);
  const yticks = linTicks(ylo, yhi);
  axes(svg, x, y, logTicks(xlo, xhi), yticks, (t) => `${t}%`, tickFormat(yticks),
    "trained parameters, % of the backbone (log scale)", metricName);

  for (const b of budget) {
    svg.append(el("line", { class: "budget-line", "data-at": b.at, x1: x(b.at), x2: x(b.at), y1: M.t, y2: H - M.b,
      stroke: "#c92a2a", "stroke-dasharray": "5 4", "stroke-width": 1.4 }, el("title", {}, `${b.text}: ${b.at}%`)));
    svg.append(el("text", { class: "budget-label", x: x(b.at) + 4, y: M.t + 12, fill: "#c92a2a" },
      `${b.text} ${fmt.pct(b.at / 100)}`));
  }
  const steps = [...front].sort((a, b) => xOf(a) - xOf(b));
  if (steps.length) {
    let d = `M ${x(xOf(steps[0]))} ${y(steps[0].metric)}`;
    for (const t of steps.slice(1)) d += ` H ${x(xOf(t))} V ${y(t.metric)}`;
    svg.append(el("path", { class: "front-line", d }));
  }
  const onFront = new Set(front.map((t) => t.id));
  for (const t of done) {
    const baseline = t.source === "baseline";
    const attrs = { "data-trial-id": t.id, "data-x": t.param_fraction, "data-y": t.metric,
      cx: x(xOf(t)), cy: y(t.metric), onclick: () => select(t.id) };
    const warm = t.source === "warm_start" ? " warm-start" : "";
    const cls = baseline ? "baseline" : `point${onFront.has(t.id) ? " on-front" : ""}${warm}`;
    const node = baseline
      ? el("rect", { ...attrs, class: cls, x: x(xOf(t)) - 5, y: y(t.metric) - 5, width: 10, height: 10 })
      : el("circle", { ...attrs, class: cls + (view.selected === t.id ? " selected" : ""), r: onFront.has(t.id) ? 6 : 5 });
    node.append(el("title", {}, `#${t.number} ${t.label ? t.label + " · " : ""}${warm ? "warm start · " : ""}` +
      `${fmt.metric(t.metric)} at ${fmt.pct(t.param_fraction)}`));
    svg.append(node);
    if (baseline && t.label) {
      svg.append(el("text", { class: "baseline-label", x: x(xOf(t)) + 7, y: y(t.metric) - 6 }, t.label));
    }
  }
  for (const t of stopped) { // hollow squares at the partial metric: never part of the front
    const [cx, cy] = [x(xOf(t)), y(t.metric)];
    svg.append(el("rect", { class: `stopped${view.selected === t.id ? " selected" : ""}`, "data-trial-id": t.id,
      "data-x": t.param_fraction, "data-y": t.metric, x: cx - 4, y: cy - 4, width: 8, height: 8,
      onclick: () => select(t.id) },
      el("title", {}, `#${t.number} stopped early at step ${t.last_step ?? "?"}: ${fmt.metric(t.metric)} so far`)));
  }
  for (const t of running) {
    svg.append(el("circle", { class: "running", "data-trial-id": t.id, cx: x(xOf(t)), cy: H - M.b - 6, r: 5,
      onclick: () => select(t.id) }, el("title", {}, `#${t.number} running`)));
  }
  return svg;
}

/** The selected trial's learning curve (metric over training steps), with the best completed trial's in grey. */
function curveChart(t, trials, metricName) {
  const CW = 420, CH = 200, C = { l: 48, r: 12, t: 10, b: 36 };
  const svg = el("svg", { id: "curve", viewBox: `0 0 ${CW} ${CH}`, width: "100%", role: "img",
    "aria-label": `${metricName} over training steps of trial #${t.number}` });
  const own = t.curve || [];
  if (!own.length) {
    svg.append(el("text", { x: CW / 2, y: CH / 2, "text-anchor": "middle" }, "no progress reported yet"));
    return svg;
  }
  const best = trials.filter((o) => o.state === "completed" && o.id !== t.id && (o.curve || []).length)
    .sort((a, b) => b.metric - a.metric)[0];
  const all = [...own, ...(best ? best.curve : [])];
  const steps = all.map((p) => p[0]), values = all.map((p) => p[1]);
  const [xlo, xhi] = [0, Math.max(...steps)];
  let [ylo, yhi] = [Math.min(...values), Math.max(...values)];
  const pad = (yhi - ylo) * 0.1 || 0.05;
  ylo -= pad; yhi += pad;
  const x = (v) => C.l + (v - xlo) / ((xhi - xlo) || 1) * (CW - C.l - C.r);
  const y = (v) => CH - C.b - (v - ylo) / (yhi - ylo) * (CH - C.t - C.b);
  const g = el("g", { class: "axis" });
  const yticks = linTicks(ylo, yhi, 4);
  const yfmt = tickFormat(yticks);
  for (const v of yticks) {
    g.append(el("line", { class: "gridline", x1: C.l, x2: CW - C.r, y1: y(v), y2: y(v) }));
    g.append(el("text", { x: C.l - 6, y: y(v) + 4, "text-anchor": "end" }, yfmt(v)));
  }
  for (const v of linTicks(xlo, xhi, 5)) g.append(el("text", { x: x(v), y: CH - C.b + 14, "text-anchor": "middle" }, v));
  g.append(el("line", { x1: C.l, x2: CW - C.r, y1: CH - C.b, y2: CH - C.b }));
  g.append(el("text", { x: (C.l + CW - C.r) / 2, y: CH - 4, "text-anchor": "middle" }, "training step"));
  svg.append(g);
  const line = (curve, cls) => el("polyline", { class: cls, points: curve.map(([s, m]) => `${x(s)},${y(m)}`).join(" ") });
  if (best) {
    const reference = line(best.curve, "curve-best");
    reference.append(el("title", {}, `best completed trial #${best.number}`));
    svg.append(reference);
  }
  svg.append(line(own, `curve-line${t.state === "stopped" ? " curve-stopped" : ""}`));
  for (const [s, m] of own) {
    svg.append(el("circle", { class: "curve-point", "data-step": s, "data-metric": m, cx: x(s), cy: y(m), r: 2.5 },
      el("title", {}, `step ${s}: ${fmt.metric(m)}`)));
  }
  if (t.state === "stopped") {
    const [s, m] = own[own.length - 1];
    svg.append(el("text", { class: "curve-stop", x: x(s) - 4, y: y(m) - 8, "text-anchor": "end" }, "stopped"));
  }
  return svg;
}

function hvChart(trials, floor) {
  const done = trials.filter((t) => t.state === "completed" && t.finished_at)
    .sort((a, b) => new Date(a.finished_at) - new Date(b.finished_at));
  const series = done.map((_, i) => hypervolume(done.slice(0, i + 1), floor));
  const HW = 1200, h = 220; // wide and short: the chart spans the page at about the scatter's text size
  const svg = el("svg", { id: "hv-chart", viewBox: `0 0 ${HW} ${h}`, width: "100%" });
  if (!series.length) return svg;
  const top = Math.max(...series) * 1.05 || 1;
  const x = (i) => M.l + (series.length === 1 ? 0.5 : i / (series.length - 1)) * (HW - M.l - M.r);
  const y = (v) => h - M.b - v / top * (h - M.t - M.b);
  const g = el("g", { class: "axis" });
  const hvTicks = linTicks(0, top, 4);
  const hvFmt = tickFormat(hvTicks);
  for (const t of hvTicks) {
    g.append(el("line", { class: "gridline", x1: M.l, x2: HW - M.r, y1: y(t), y2: y(t) }));
    g.append(el("text", { x: M.l - 6, y: y(t) + 4, "text-anchor": "end" }, hvFmt(t)));
  }
  for (const i of linTicks(1, series.length, 6).filter(Number.isInteger)) {
    g.append(el("text", { x: x(i - 1), y: h - M.b + 16, "text-anchor": "middle" }, i));
  }
  g.append(el("line", { x1: M.l, x2: HW - M.r, y1: h - M.b, y2: h - M.b }));
  g.append(el("text", { x: (M.l + HW - M.r) / 2, y: h - 8, "text-anchor": "middle" }, "completed trials"));
  svg.append(g);
  svg.append(el("polyline", { class: "hv-line", points: series.map((v, i) => `${x(i)},${y(v)}`).join(" ") }));
  svg.setAttribute("data-final", series[series.length - 1]);
  return svg;
}

// ---------------------------------------------------------------------------------- details
function select(id) {
  view.selected = id;
  const { study, trials } = view.data;
  document.getElementById("details").replaceChildren(details(trials, study));
  for (const node of document.querySelectorAll("#scatter .point, #scatter .stopped")) {
    node.classList.toggle("selected", Number(node.getAttribute("data-trial-id")) === id);
  }
  for (const row of document.querySelectorAll("#front tr[data-trial-id]")) {
    row.classList.toggle("selected", Number(row.getAttribute("data-trial-id")) === id);
  }
}

function details(trials, study) {
  const t = trials.find((x) => x.id === view.selected);
  if (!t) return [el("h2", {}, "Trial"), el("p", { class: "muted" }, "Click a point or a row to see its configuration.")];
  const metrics = Object.entries(t.metrics || {}).map(([k, v]) => `${k} ${v.toFixed(4)}`).join(", ");
  const metricName = study.task.metric || "metric";
  const state = t.state === "stopped" ? `stopped early at step ${t.last_step ?? "?"} (partial metric, not on the front)`
    : t.state === "running" && t.last_step !== null && t.last_step !== undefined ? `running (step ${t.last_step})` : t.state;
  return [
    el("h2", {}, `Trial #${t.number}${t.label ? ` · ${t.label}` : ""}`),
    el("div", { class: "kv", id: "trial-numbers" },
      el("span", { class: "muted" }, "state"), el("span", {}, state),
      el("span", { class: "muted" }, "metric"), el("span", {}, fmt.metric(t.metric)),
      el("span", { class: "muted" }, "parameters"), el("span", {}, `${fmt.int(t.peft_params)} (${fmt.pct(t.param_fraction)})`),
      el("span", { class: "muted" }, "other scores"), el("span", {}, metrics || "–"),
      el("span", { class: "muted" }, "proposed by"), el("span", { id: "trial-source" }, t.source === "warm_start"
        ? "warm start (a front configuration of an earlier study, trained again on this task)" : t.source),
      el("span", { class: "muted" }, "worker"), el("span", {}, t.worker_id || "–"),
      el("span", { class: "muted" }, "duration"), el("span", {}, fmt.secs(t.duration_s))),
    el("h3", {}, `Learning curve (${metricName} on the search split)`),
    curveChart(t, trials, metricName),
    layerTable(t, study.model_shape ? study.model_shape.n_layers : null),
    el("button", { class: "copy", onclick: (e) => copyJson(t.config, e.target) }, "Copy configuration JSON"),
    el("pre", { id: "config-json" }, prettyJson(t.config)),
    t.state === "completed" ? el("h3", {}, "Retrain and export it") : null,
    t.state === "completed" ? el("pre", { id: "export-command" }, exportCommand(study, t)) : null,
    t.error ? el("pre", { class: "error" }, t.error.slice(-2000)) : null,
  ];
}

/** Which families sit on which layers, with their sizes: one row per family, one column per layer.
 * The server says where each family sits (``placement``): the page knows no family. */
function layerTable(trial, nLayers) {
  const config = trial.config;
  const placement = trial.placement || {};
  const families = Object.keys(config);
  if (!families.length) return el("p", { id: "layer-table" }, "Head only (no PEFT module).");
  const sizesOf = (name) => {
    const layers = (placement[name] || {}).layers;
    return layers ? Object.fromEntries(Object.entries(layers).map(([k, v]) => [Number(k), v === true ? "✓" : v])) : null;
  };
  const n = nLayers || Math.max(0, ...families.flatMap((f) => Object.keys(sizesOf(f) || {}).map(Number))) + 1;
  const extras = (name, body) => Object.entries(body)
    .filter(([k]) => k !== "layers" && k !== (placement[name] || {}).size_field)
    .map(([k, v]) => `${k} ${Array.isArray(v) ? v.join(",") : v}`).join(", ");
  return el("table", { class: "layers", id: "layer-table" },
    el("thead", {}, el("tr", {}, el("th", {}, "family"),
      Array.from({ length: n }, (_, i) => el("th", {}, `L${i}`)), el("th", {}, "settings"))),
    el("tbody", {}, families.map((name) => {
      const sizes = sizesOf(name);
      const cells = Array.from({ length: n }, (_, i) => {
        if (!sizes) return el("td", {}, "·");
        return i in sizes ? el("td", {}, sizes[i]) : el("td", { class: "off" }, "–");
      });
      return el("tr", { "data-family": name }, el("td", {}, name.replace("_", " ")), cells,
        el("td", { class: "muted" }, extras(name, config[name]) || ""));
    })));
}

/** Indented JSON with lists of numbers or strings kept on one line. */
function prettyJson(value) {
  return JSON.stringify(value, null, 2).replace(/\[\s+([^\[\]{}]*?)\s+\]/g,
    (_, inner) => `[${inner.split(/,\s+/).join(", ")}]`);
}

async function copyJson(config, button) {
  await copyText(prettyJson(config), button, "Copy configuration JSON");
}

async function copyText(text, button, label) {
  try { // the async clipboard needs a secure context and permission: give it a second, then fall back
    if (!navigator.clipboard) throw new Error("no clipboard API");
    await Promise.race([navigator.clipboard.writeText(text),
      new Promise((_, reject) => setTimeout(() => reject(new Error("clipboard timeout")), 1000))]);
  } catch (e) {
    const area = el("textarea", { style: "position:fixed;opacity:0" }, text);
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  button.textContent = "Copied";
  button.setAttribute("data-copied", text);
  setTimeout(() => { button.textContent = label; }, 1500);
}

/** From a front point to a model: retrain it on the whole training file with the study's settings, then export it
 * to ONNX (any configuration exports there; `autopeft serve-model` serves the folder). */
function exportCommand(study, t) {
  const run = `runs/study${study.id}-trial${t.number}`;
  return `autopeft study retrain ${study.id} --trial ${t.number} --save ${run} --server ${location.origin} && ` +
    `autopeft export ${run} --to onnx ${run}-onnx`;
}

// ---------------------------------------------------------------------------------- front table
const COLUMNS = [
  { key: "number", label: "#", num: true, get: (t) => t.number },
  { key: "metric", label: "metric", num: true, get: (t) => t.metric, show: fmt.metric },
  { key: "param_fraction", label: "% params", num: true, get: (t) => t.param_fraction, show: fmt.pct },
  { key: "peft_params", label: "parameters", num: true, get: (t) => t.peft_params, show: fmt.int },
  { key: "summary", label: "configuration", num: false, get: (t) => t.summary || JSON.stringify(t.config) },
];

function frontTable(front, study, metricName) {
  const { key, dir } = view.sort;
  const col = COLUMNS.find((c) => c.key === key) || COLUMNS[1];
  const rows = [...front].sort((a, b) => {
    const va = col.get(a), vb = col.get(b);
    return (va < vb ? -1 : va > vb ? 1 : 0) * dir;
  });
  const header = COLUMNS.map((c) => el("th", {
    class: `sortable${c.num ? " num" : ""}${c.key === key ? (dir > 0 ? " sorted-asc" : " sorted-desc") : ""}`,
    "data-key": c.key,
    onclick: () => {
      view.sort = { key: c.key, dir: c.key === key ? -dir : (c.num ? -1 : 1) };
      const table = document.getElementById("front");
      table.replaceWith(frontTable(front, study, metricName));
    },
  }, c.key === "metric" ? metricName : c.label));
  return el("table", { id: "front" },
    el("thead", {}, el("tr", {}, header, el("th", {}, ""))),
    el("tbody", {}, rows.map((t) => el("tr", { class: `clickable${view.selected === t.id ? " selected" : ""}`,
      "data-trial-id": t.id, onclick: () => select(t.id) },
      COLUMNS.map((c) => el("td", { class: c.num ? "num" : "" }, c.show ? c.show(c.get(t)) : c.get(t))),
      el("td", {}, el("button", { class: "copy", onclick: (e) => { e.stopPropagation(); copyJson(t.config, e.target); } },
        "Copy JSON"), " ", el("button", {
        class: "copy-command", title: exportCommand(study, t),
        onclick: (e) => { e.stopPropagation(); copyText(exportCommand(study, t), e.target, "Copy export command"); },
      }, "Copy export command"))))));
}
