// The Fife dashboard's pages. Each page opens one server-sent-event stream and redraws from
// its `snapshot` events; `problem` events and a lost connection are shown in the banner.
// Objects are rendered from the API server's JSON, so fields the page does not know are
// shown in the raw view rather than dropped. Charts are drawn by uPlot.
"use strict";

const page = document.getElementById("page");
const banner = document.getElementById("problem");
const connection = document.getElementById("connection");
let config = { allowActions: false };

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

// replaceChildren, skipping absent parts (replaceChildren would print "null").
function fill(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
}

function showProblem(message) {
  banner.hidden = !message;
  banner.textContent = message || "";
}

function age(timestamp) {
  if (!timestamp) return "";
  const s = Math.max(0, Math.round((Date.now() - Date.parse(timestamp)) / 1000));
  if (s < 120) return s + "s";
  if (s < 7200) return Math.round(s / 60) + "m";
  if (s < 172800) return Math.round(s / 3600) + "h";
  return Math.round(s / 86400) + "d";
}

function phaseBadge(phase) {
  const p = phase || "Unknown";
  return el("span", { class: "phase phase-" + p.toLowerCase(), "data-field": "phase" }, p);
}

function weights(status) {
  const w = status && status.weights;
  if (!w) return "";
  return `canary ${w.canary ?? 0}% · baseline ${w.baseline ?? 0}% · stable ${w.stable ?? 0}%`;
}

function stepText(rollout) {
  const steps = (((rollout.spec || {}).strategy || {}).canary || {}).steps || [];
  const s = rollout.status || {};
  if (s.stepLabel) return s.stepLabel;
  if (s.currentStepIndex === undefined || s.currentStepIndex === null) return "";
  return `${Math.min(s.currentStepIndex + 1, steps.length)}/${steps.length}`;
}

function lastDecision(rollout) {
  const s = rollout.status || {};
  if (s.lastManualAction) {
    const a = s.lastManualAction;
    return `${a.action} ${a.outcome || ""} ${age(a.handledAt)} ago`.trim();
  }
  if (s.abort) return "aborted " + (s.abortedAt ? age(s.abortedAt) + " ago" : "");
  const cond = (s.conditions || []).slice().sort((a, b) =>
    String(b.lastTransitionTime).localeCompare(String(a.lastTransitionTime)))[0];
  return cond ? `${cond.type}: ${cond.reason || cond.status}` : "";
}

function stream(url, onSnapshot) {
  const source = new EventSource(url);
  source.addEventListener("open", () => {
    connection.textContent = "live";
    connection.className = "connection live";
  });
  source.addEventListener("snapshot", (e) => {
    showProblem("");
    onSnapshot(JSON.parse(e.data));
  });
  source.addEventListener("problem", (e) => showProblem(JSON.parse(e.data).message));
  source.addEventListener("error", () => {
    connection.textContent = "reconnecting…";
    connection.className = "connection lost";
    showProblem("Lost the connection to the dashboard server (is `fife dashboard` still running?); reconnecting.");
  });
  return source;
}

// ---- all Rollouts -------------------------------------------------------------------------

function listPage() {
  document.title = "Rollouts · Fife";
  const body = el("tbody", { id: "rollouts" });
  page.replaceChildren(
    el("h1", {}, "Rollouts"),
    el("table", { class: "list" },
      el("thead", {}, el("tr", {}, ["Name", "Namespace", "Phase", "Step", "Traffic", "Ready", "Age",
        "Message", "Last decision"].map((h) => el("th", {}, h)))),
      body),
    el("p", { id: "empty", class: "muted", hidden: true }, "No Rollouts in scope."));
  stream("/api/stream/rollouts", (data) => {
    const items = data.items || [];
    document.getElementById("empty").hidden = items.length > 0;
    body.replaceChildren(...items.map((r) => {
      const m = r.metadata || {}, s = r.status || {};
      return el("tr", { id: `rollout-${m.namespace}-${m.name}`, "data-phase": s.phase || "" },
        el("td", {}, el("a", { href: `/rollouts/${m.namespace}/${m.name}` }, m.name)),
        el("td", {}, m.namespace),
        el("td", {}, phaseBadge(s.phase)),
        el("td", {}, stepText(r)),
        el("td", {}, weights(s)),
        el("td", {}, s.readyLabel || `${s.readyReplicas ?? 0}/${s.replicas ?? 0}`),
        el("td", {}, age(m.creationTimestamp)),
        el("td", { class: "message" }, s.message || ""),
        el("td", {}, lastDecision(r)));
    }));
  });
}

// ---- one Rollout --------------------------------------------------------------------------

function stepLabel(step) {
  const [kind, value] = Object.entries(step)[0] || ["?", null];
  if (kind === "setWeight") return `set weight ${value}%`;
  if (kind === "pause") return value && value.duration ? `pause ${value.duration}` : "pause until promoted";
  if (kind === "analysis") return "analysis: " + ((value.templates || []).map((t) => t.templateName).join(", "));
  return kind;
}

function waitingFor(rollout, step) {
  const s = rollout.status || {};
  const why = [];
  for (const c of s.pauseConditions || []) why.push(`paused (${c.reason}) since ${age(c.startTime)} ago`);
  if (rollout.spec && rollout.spec.paused) why.push("paused by spec.paused");
  if (step && step.pause && step.pause.duration && s.currentStepStartedAt) {
    const total = parseDuration(step.pause.duration);
    const left = total - (Date.now() - Date.parse(s.currentStepStartedAt)) / 1000;
    if (total > 0) why.push(left > 0 ? `bake time left: ${Math.ceil(left)}s` : "bake time over");
  }
  if (step && step.pause && !step.pause.duration) why.push("waiting for promote");
  if (step && step.analysis && s.currentAnalysisRun) why.push(`analysis ${s.currentAnalysisRun}`);
  return why.join("; ");
}

function parseDuration(text) {
  let total = 0;
  for (const [, n, unit] of String(text).matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) {
    total += Number(n) * { ms: 0.001, s: 1, m: 60, h: 3600 }[unit];
  }
  return total;
}

function actionButtons(namespace, name) {
  if (!config.allowActions) return el("p", { class: "muted" }, "Read-only: start with --allow-actions for buttons.");
  const result = el("span", { id: "action-result", class: "muted" });
  const reason = el("input", { id: "action-reason", placeholder: "reason (recorded in the audit log)" });
  const button = (action, label) => el("button", {
    id: "action-" + action,
    onclick: async () => {
      result.textContent = label + "…";
      try {
        const response = await fetch(`/api/rollouts/${namespace}/${name}/${action}`, {
          method: "POST",
          headers: { "content-type": "application/json", "x-fife-dashboard": "1" },
          body: JSON.stringify({ reason: reason.value }),
        });
        const body = await response.json();
        result.textContent = body.message || body.error;
        result.className = response.ok ? "ok" : "error";
      } catch (e) {
        result.textContent = "The request did not reach the dashboard server: " + e;
        result.className = "error";
      }
    },
  }, label);
  return el("div", { class: "actions" },
    button("promote", "Promote"), button("promote-full", "Promote fully"), button("abort", "Abort"),
    button("retry", "Retry"), button("pause", "Pause"), button("resume", "Resume"), reason, result);
}

let countdown = null;

function rolloutPage(namespace, name) {
  document.title = `${name} · Fife`;
  const view = el("div", {});
  page.replaceChildren(el("h1", {}, el("a", { href: "/" }, "Rollouts"), " / ", name), actionButtons(namespace, name), view);
  stream(`/api/stream/rollouts/${namespace}/${name}`, (data) => {
    const r = data.rollout, s = r.status || {};
    const steps = (((r.spec || {}).strategy || {}).canary || {}).steps || [];
    const current = s.currentStepIndex ?? -1;
    if ((data.problems || []).length) showProblem(data.problems.join(" "));
    const timeline = el("ol", { class: "timeline", id: "steps" }, steps.map((step, i) =>
      el("li", { class: i < current ? "done" : i === current ? "current" : "todo" },
        el("span", { class: "step-name" }, stepLabel(step)),
        i === current ? el("span", { class: "waiting" }, waitingFor(r, step)) : null)));
    // The bake time left changes with the clock, not the cluster: count it down here.
    clearInterval(countdown);
    if (steps[current]) {
      countdown = setInterval(() => {
        const waiting = timeline.querySelector(".waiting");
        if (waiting) waiting.textContent = waitingFor(r, steps[current]);
      }, 1000);
    }
    fill(view,
      el("section", { class: "summary" },
        el("div", {}, phaseBadge(s.phase), " ", el("span", { class: "message" }, s.message || "")),
        el("div", {}, "Traffic: ", el("strong", { id: "weights" }, weights(s) || "not routed yet")),
        el("div", {}, "Ready: ", s.readyLabel || `${s.readyReplicas ?? 0}/${s.replicas ?? 0}`,
          " · stable ", s.stableRevision || "–", " · canary ", s.canaryRevision || "–")),
      el("h2", {}, "Steps"), timeline,
      el("h2", {}, "Deployments"), table(["Name", "Ready", "Replicas", "Image"], (data.deployments || []).map((d) => [
        d.metadata.name, `${(d.status || {}).readyReplicas ?? 0}`, `${(d.spec || {}).replicas ?? 0}`,
        ((((d.spec || {}).template || {}).spec || {}).containers || []).map((c) => c.image).join(", ")])),
      el("h2", {}, "Analyses"), table(["AnalysisRun", "Phase", "Step", "Started", "Message"], (data.analysisRuns || []).map((a) => [
        el("a", { href: `/analysisruns/${namespace}/${a.metadata.name}` }, a.metadata.name),
        phaseBadge((a.status || {}).phase), stepNumber(((a.spec || {}).rollout || {}).stepIndex),
        age((a.status || {}).startedAt), (a.status || {}).message || ""])),
      el("h2", {}, "Events"), table(["Age", "Type", "Reason", "Message"], (data.events || []).map((e) => [
        age(e.lastTimestamp || e.metadata.creationTimestamp), e.type || "", e.reason || "", e.message || ""])),
      data.audit ? el("div", { id: "audit" }, el("h2", {}, "Audit trail"), table(["Seq", "Time", "Action", "Actor", "Reason", "Evidence"],
        data.audit.slice().reverse().map((a) => [a.seq ?? "", a.time || "", a.action || "",
          a.actor && typeof a.actor === "object" ? `${a.actor.name || ""} (${a.actor.kind || ""})` : (a.actor || ""),
          a.reason || "",
          a.evidence && Object.keys(a.evidence).length ? el("details", {}, el("summary", {}, Object.keys(a.evidence).join(", ")),
            el("pre", {}, JSON.stringify(a.evidence, null, 2))) : ""]))) : null,
      el("details", {}, el("summary", {}, "Rollout as JSON"), el("pre", {}, JSON.stringify(r, null, 2))));
  });
}

function stepNumber(index) {
  return typeof index === "number" ? String(index + 1) : "";
}

function table(headers, rows) {
  if (!rows.length) return el("p", { class: "muted" }, "None.");
  return el("table", {}, el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
    el("tbody", {}, rows.map((row) => el("tr", {}, row.map((cell) => el("td", {}, cell))))));
}

// ---- one AnalysisRun ----------------------------------------------------------------------

function fmt(x, digits) {
  return typeof x === "number" && isFinite(x) ? x.toPrecision(digits || 3) : "–";
}

function inWords(j) {
  if (!j) return "No comparison in this measurement.";
  const parts = [`Compared ${j.nCanary ?? "?"} canary samples with ${j.nBaseline ?? "?"} baseline samples` +
    (j.method ? ` (${j.method})` : "") + "."];
  if (typeof j.pValue === "number") parts.push(`p-value ${fmt(j.pValue)}.`);
  if (typeof j.shift === "number") {
    parts.push(`The canary is shifted by ${fmt(j.shift)} relative to the baseline` +
      (j.ci ? `, ${Math.round((j.ci.level || 0) * 100)}% interval [${fmt(j.ci.lower)}, ${fmt(j.ci.upper)}].` : "."));
  }
  if (typeof j.cles === "number") parts.push(`A canary sample exceeds a baseline sample with probability ${fmt(j.cles)}.`);
  if (j.classification) parts.push(`Judged ${j.classification}` + (j.reason ? `: ${j.reason}` : "."));
  const known = new Set(["nCanary", "nBaseline", "u", "pValue", "method", "shift", "ci", "effectSize", "cles", "classification", "reason"]);
  const extra = Object.entries(j).filter(([k]) => !known.has(k));
  if (extra.length) parts.push(extra.map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join("; ") + ".");
  return parts.join(" ");
}

const charts = [];

function plot(target, title, series, data, opts) {
  const width = Math.min(720, (page.clientWidth || 760) - 20);
  const chart = new uPlot(Object.assign({
    title, width, height: 220,
    scales: { x: { time: true } },
    series: [{}].concat(series),
  }, opts || {}), data, target);
  charts.push(chart);
  return chart;
}

function metricSection(run, metric, spec) {
  const ms = (metric.measurements || []).filter((m) => m.finishedAt || m.startedAt);
  const t = ms.map((m) => Date.parse(m.finishedAt || m.startedAt) / 1000);
  const j = ms.map((m) => m.judgement || {});
  const num = (f) => j.map((x) => (typeof f(x) === "number" ? f(x) : null));
  const last = ms[ms.length - 1];
  const section = el("section", { class: "metric", id: "metric-" + metric.name },
    el("h2", {}, metric.name, " ", phaseBadge(metric.phase)),
    el("p", {}, `${metric.count ?? 0} measurements: ${metric.successful ?? 0} successful, ${metric.failed ?? 0} failed, ` +
      `${metric.inconclusive ?? 0} inconclusive, ${metric.error ?? 0} errors.` + (metric.message ? " " + metric.message : "")),
    el("table", { class: "measurements" }, el("thead", {}, el("tr", {}, ["Finished", "Phase", "Value", "p-value", "Shift", "Interval", "Message"].map((h) => el("th", {}, h)))),
      el("tbody", {}, ms.map((m) => {
        const x = m.judgement || {};
        return el("tr", {}, el("td", {}, m.finishedAt || ""), el("td", {}, phaseBadge(m.phase)), el("td", {}, m.value ?? ""),
          el("td", {}, fmt(x.pValue)), el("td", {}, fmt(x.shift)),
          el("td", {}, x.ci ? `[${fmt(x.ci.lower)}, ${fmt(x.ci.upper)}]` : "–"), el("td", {}, m.message || ""));
      }))),
    el("p", { class: "words", id: "words-" + metric.name }, inWords(last && last.judgement)));
  if (spec && spec.compare) {
    section.append(el("p", { class: "muted" }, "Comparison: " + Object.entries(spec.compare)
      .filter(([, v]) => typeof v !== "object").map(([k, v]) => `${k} ${v}`).join(", ") + "."));
  }
  if (spec && spec.compare && last && (last.finishedAt || last.startedAt)) {
    const box = el("div", { class: "chart", id: "distributions-" + metric.name });
    const note = el("p", { class: "muted", id: "distributions-note-" + metric.name },
      "Fetching the last measurement's canary and baseline samples from Prometheus…");
    section.append(box, note);
    distributions(run, metric.name, last, box, note);
  }
  if (t.length) {
    const shiftBox = el("div", { class: "chart", id: "shift-" + metric.name });
    const pBox = el("div", { class: "chart", id: "pvalue-" + metric.name });
    section.append(shiftBox, pBox);
    requestAnimationFrame(() => {
      plot(shiftBox, "Shift and its interval", [
        { label: "shift", stroke: "#1f5fbf", width: 2, points: { show: true } },
        { label: "upper", stroke: "#9bb8e6", dash: [4, 4] },
        { label: "lower", stroke: "#9bb8e6", dash: [4, 4] },
      ], [t, num((x) => x.shift), num((x) => x.ci && x.ci.upper), num((x) => x.ci && x.ci.lower)],
      { bands: [{ series: [2, 3], fill: "rgba(31,95,191,0.15)" }] });
      plot(pBox, "p-value", [
        { label: "p-value", stroke: "#b5482b", width: 2, points: { show: true } },
      ], [t, num((x) => x.pValue)], { scales: { x: { time: true }, y: { range: [0, 1] } } });
    });
  }
  return section;
}

// The samples behind a measurement never change: fetch them once per measurement.
const sampleCache = new Map();

function samplesOf(run, metric, measurement) {
  const m = run.metadata;
  const key = [m.namespace, m.name, metric, measurement.finishedAt || measurement.startedAt].join("/");
  if (!sampleCache.has(key)) {
    sampleCache.set(key, fetch(`/api/analysisruns/${m.namespace}/${m.name}/samples/${encodeURIComponent(metric)}`)
      .then(async (r) => ({ ok: r.ok, body: await r.json() })));
  }
  return sampleCache.get(key);
}

// Empirical CDFs of both sides on one x axis, and the baseline moved by the shift: where the
// canary's curve lies on the moved baseline's, the shift explains the difference.
function ecdfData(canary, baseline, shift) {
  const sides = [canary, baseline];
  if (typeof shift === "number") sides.push(baseline.map((v) => v + shift));
  const sorted = sides.map((values) => values.slice().sort((a, b) => a - b));
  const xs = Array.from(new Set(sorted.flat())).sort((a, b) => a - b);
  const cdf = (values) => {
    let i = 0;
    return xs.map((x) => {
      while (i < values.length && values[i] <= x) i++;
      return i / values.length;
    });
  };
  return [xs, ...sorted.map(cdf)];
}

async function distributions(run, metric, measurement, box, note) {
  const { ok, body } = await samplesOf(run, metric, measurement);
  if (!ok) {
    note.textContent = "Samples not shown: " + body.error;
    return;
  }
  const shift = (measurement.judgement || {}).shift;
  note.textContent = `Last measurement's samples (${body.canary.length} canary, ${body.baseline.length} baseline), ` +
    `re-read from Prometheus for the ${body.lookbackSeconds}s before ${body.at}.` +
    (typeof shift === "number" ? ` Dashed: the baseline moved by the shift ${fmt(shift)}.` : "");
  const series = [
    { label: "canary", stroke: "#b5482b", width: 2, paths: uPlot.paths.stepped({ align: 1 }), points: { show: false } },
    { label: "baseline", stroke: "#1f5fbf", width: 2, paths: uPlot.paths.stepped({ align: 1 }), points: { show: false } },
  ];
  if (typeof shift === "number") {
    series.push({ label: "baseline + shift", stroke: "#1f5fbf", dash: [5, 5], paths: uPlot.paths.stepped({ align: 1 }), points: { show: false } });
  }
  box.replaceChildren();
  plot(box, "Canary and baseline distributions (ECDF)", series, ecdfData(body.canary, body.baseline, shift),
    { scales: { x: { time: false }, y: { range: [0, 1] } } });
}

function analysisPage(namespace, name) {
  document.title = `${name} · Fife`;
  const view = el("div", {});
  page.replaceChildren(el("h1", {}, el("a", { href: "/" }, "Rollouts"), " / ", name), view);
  stream(`/api/stream/analysisruns/${namespace}/${name}`, (data) => {
    const run = data.analysisRun, s = run.status || {};
    const specs = Object.fromEntries(((run.spec || {}).metrics || []).map((m) => [m.name, m]));
    const rollout = (run.spec || {}).rollout;
    while (charts.length) charts.pop().destroy();
    fill(view,
      el("section", { class: "summary" },
        el("div", {}, phaseBadge(s.phase), " ", s.message || ""),
        rollout ? el("div", {}, "For Rollout ", el("a", { href: `/rollouts/${namespace}/${rollout.name}` }, rollout.name),
          rollout.stepIndex !== undefined ? ` at step ${rollout.stepIndex + 1}` : "",
          rollout.canaryRevision ? `, canary ${rollout.canaryRevision}` : "") : null,
        el("div", {}, "Started ", s.startedAt || "–", s.completedAt ? ", completed " + s.completedAt : "")),
      ...(s.metricResults || []).map((m) => metricSection(run, m, specs[m.name])),
      el("details", {}, el("summary", {}, "AnalysisRun as JSON"), el("pre", {}, JSON.stringify(run, null, 2))));
  });
}

// ---- routing ------------------------------------------------------------------------------

async function main() {
  try {
    config = await (await fetch("/api/config")).json();
    document.getElementById("scope").textContent = (config.allNamespaces ? "all namespaces" : "namespace " + config.namespace) +
      (config.allowActions ? " · actions allowed" : " · read-only");
  } catch (e) {
    showProblem("Cannot reach the dashboard server: " + e);
    return;
  }
  const parts = location.pathname.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "rollouts" && parts.length === 3) rolloutPage(parts[1], parts[2]);
  else if (parts[0] === "analysisruns" && parts.length === 3) analysisPage(parts[1], parts[2]);
  else listPage();
}

main();
