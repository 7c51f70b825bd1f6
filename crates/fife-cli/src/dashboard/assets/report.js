// `fife audit report --output html`: draws the embedded verification result and records.
// Everything it needs is in this file's page; it loads nothing.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const el = (tag, text, cls) => {
    const n = document.createElement(tag);
    if (text !== undefined) n.textContent = text;
    if (cls) n.className = cls;
    return n;
  };
  const verdict = document.getElementById("verdict");
  verdict.className = data.verification.whole ? "verdict whole" : "verdict broken";
  for (const line of data.verification.lines) verdict.append(el("div", line));

  // Cumulative decisions per action at each record's time, as steps: every rise is a record.
  const records = data.records;
  const actions = Array.from(new Set(records.map((r) => r.action))).sort();
  const times = Array.from(new Set(records.map((r) => Date.parse(r.time) / 1000))).sort((a, b) => a - b);
  const palette = ["#1f5fbf", "#b5482b", "#1a6b32", "#7a5a00", "#6a3d9a", "#0f7c8c", "#8a1c12", "#555"];
  if (times.length) {
    const columns = [times, ...actions.map((a) => {
      let n = 0, i = 0;
      const mine = records.filter((r) => r.action === a).map((r) => Date.parse(r.time) / 1000).sort((x, y) => x - y);
      return times.map((t) => {
        while (i < mine.length && mine[i] <= t) { n++; i++; }
        return n;
      });
    })];
    const series = actions.map((a, i) => ({
      label: a, stroke: palette[i % palette.length], width: 2, paths: uPlot.paths.stepped({ align: 1 }),
    }));
    const pad = Math.max(60, (times[times.length - 1] - times[0]) * 0.05);
    new uPlot({
      title: "Decisions so far, by action", width: 900, height: 260,
      scales: { x: { time: true, range: [times[0] - pad, times[times.length - 1] + pad] } },
      series: [{}].concat(series),
    }, columns, document.getElementById("chart"));
  }

  const body = document.querySelector("#records tbody");
  for (const r of records) {
    const row = el("tr");
    const rollout = r.rollout ? `${r.rollout.namespace}/${r.rollout.name}` : "";
    const actor = r.actor ? `${r.actor.name} (${r.actor.kind})` : "";
    for (const cell of [r.seq, r.time, rollout, r.action, actor, r.reason || ""]) row.append(el("td", String(cell ?? "")));
    const evidence = el("td");
    if (r.evidence && Object.keys(r.evidence).length) evidence.append(el("pre", JSON.stringify(r.evidence, null, 2)));
    row.append(evidence);
    body.append(row);
  }
  document.getElementById("count").textContent = `${records.length} records`;
})();
