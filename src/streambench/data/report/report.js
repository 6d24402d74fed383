// streambench report.html: distributions and the per-run player, drawn as plain SVG.
"use strict";
const DATA = JSON.parse(document.getElementById("data").textContent);
const NS = "http://www.w3.org/2000/svg";
const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
const KIND_COLORS = {status: "#999", changes: "#2ca02c", text: "#1f77b4", done: "#000", error: "#d62728",
  structured: "#2ca02c", fault: "#d62728"};

function el(tag, attrs, text) {
  const node = tag.startsWith("svg:") ? document.createElementNS(NS, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function fmt(v) { return v === null || v === undefined ? "–" : (Math.abs(v) >= 10 ? v.toFixed(0) : v.toPrecision(3)); }

// --- distributions: one strip per chunking (dots per run, coloured by SUT), then per case ---

function median(values) {
  const s = values.slice().sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : null;
}

function legend(values) {
  const box = el("p", {class: "note"});
  values.forEach((s, i) => { box.append(el("span", {style: `color:${COLORS[i % COLORS.length]}`}, `● ${s}  `)); });
  return box;
}

// Dots per run in one row per group, coloured by the run's ``colorKey`` (sut or chunking).
function strip(groups, metric, title, colorKey) {
  const palette = [...new Set(groups.flatMap(([, runs]) => runs.map(r => r[colorKey])))].sort();
  const all = groups.flatMap(([, runs]) => runs.map(r => r.m[metric])).filter(v => v !== null);
  const box = el("div");
  box.append(el("h3", {}, title));
  if (!all.length) { box.append(el("p", {class: "note"}, "No run has this metric.")); return box; }
  const hi = Math.max(...all, 1e-9), left = 190, width = 900, row = 22;
  const svg = el("svg:svg", {width, height: groups.length * row + 30, class: "strip"});
  const x = v => left + (v / hi) * (width - left - 50);
  groups.forEach(([name, runs], g) => {
    const y = 14 + g * row;
    svg.append(el("svg:text", {x: left - 6, y: y + 4, "text-anchor": "end", class: "lane"}, name));
    svg.append(el("svg:line", {x1: left, x2: width - 20, y1: y, y2: y, stroke: "#eee"}));
    runs.forEach((r, k) => {
      const v = r.m[metric];
      if (v === null) return;
      const dot = el("svg:circle", {cx: x(v), cy: y + ((k * 7) % 11) - 5, r: 3,
        fill: COLORS[palette.indexOf(r[colorKey]) % COLORS.length], "fill-opacity": 0.7});
      dot.append(el("svg:title", {}, `#${r.i} ${r.id}: ${fmt(v)}`));
      svg.append(dot);
    });
    const m = median(runs.map(r => r.m[metric]).filter(v => v !== null));
    if (m !== null) svg.append(el("svg:line", {x1: x(m), x2: x(m), y1: y - 8, y2: y + 8, stroke: "#000", "stroke-width": 2}));
  });
  const axisY = groups.length * row + 10;
  for (let t = 0; t <= 4; t++) {
    const v = (hi * t) / 4;
    svg.append(el("svg:text", {x: x(v), y: axisY + 12, "text-anchor": "middle", class: "lane"}, fmt(v)));
  }
  box.append(svg, legend(palette));
  return box;
}

function byKey(runs, key) {
  const groups = new Map();
  for (const r of runs) { if (!groups.has(r[key])) groups.set(r[key], []); groups.get(r[key]).push(r); }
  return [...groups.entries()].sort((a, b) => String(a[0]).localeCompare(String(b[0])));
}

function drawDistributions() {
  const select = document.getElementById("metric");
  if (!select) return;
  const metric = select.value, label = DATA.metrics[metric];
  const target = document.getElementById("by-chunking");
  target.replaceChildren(strip(byKey(DATA.runs, "chunking"), metric, `${label} per chunking (colour: SUT)`, "sut"));
  // Per case, only the cases whose median differs between chunkings: the rest are listed by name.
  const differing = [], same = [];
  for (const [name, runs] of byKey(DATA.runs, "case")) {
    const medians = byKey(runs, "chunking").map(([, rs]) => median(rs.map(r => r.m[metric]).filter(v => v !== null)));
    const known = medians.filter(v => v !== null);
    // differ: medians more than 5% apart (virtual-time jitter of a ms is not a difference)
    const spread = known.length ? Math.max(...known) - Math.min(...known) : 0;
    (spread > 0.05 * Math.max(1, Math.abs(median(known))) ? differing : same).push([name, runs]);
  }
  const cases = document.getElementById("by-case");
  cases.replaceChildren();
  if (differing.length) cases.append(strip(differing, metric, `${label} per case, where chunkings differ (colour: chunking)`, "chunking"));
  if (same.length) cases.append(el("p", {class: "note"}, `Same median across chunkings: ${same.map(([n]) => n).join(", ")}.`));
}

// --- the player: the client model's state at t beside the upstream events ---
function stateAt(run, t) {
  // The client model of grade/client.py: status until text or the terminal; text appended;
  // changes applied on arrival; the final code applied when it differs from the last change.
  const s = {status: null, text: "", code: null, codeSource: null, terminal: null};
  for (const [at, source, kind, text, code] of run.ev) {
    if (at > t) break;
    if (source !== 0) continue;
    if (kind === "status") { if (!s.terminal) s.status = text; }
    else if (kind === "text") { s.status = null; s.text += text; }
    else if (kind === "changes") { if (code !== undefined) { s.code = code; s.codeSource = `changes at ${at} ms`; } }
    else if (kind === "done" || kind === "error") {
      s.status = null;
      if (!s.terminal) {
        s.terminal = {kind, at, text};
        if (kind === "done" && code !== undefined && code !== s.code) { s.code = code; s.codeSource = `final message at ${at} ms`; }
      }
    }
  }
  return s;
}

function diff(shown, expected) {
  const box = el("pre");
  let p = 0;
  while (p < shown.length && p < expected.length && shown[p] === expected[p]) p++;
  let q = 0;
  while (q < shown.length - p && q < expected.length - p && shown[shown.length - 1 - q] === expected[expected.length - 1 - q]) q++;
  box.append(document.createTextNode(shown.slice(0, p)));
  if (p < shown.length - q) box.append(el("del", {title: "shown, not expected"}, shown.slice(p, shown.length - q)));
  if (p < expected.length - q) box.append(el("ins", {title: "expected, not shown"}, expected.slice(p, expected.length - q)));
  box.append(document.createTextNode(shown.slice(shown.length - q)));
  return box;
}

function lanesOf(run) {
  const lanes = ["client status", "client changes", "client text", "client end"];
  for (const e of run.ev) if (e[1] > 0 && !lanes.includes(`upstream ${e[1]}`)) lanes.push(`upstream ${e[1]}`);
  return lanes;
}

function laneOf(source, kind) {
  if (source > 0) return `upstream ${source}`;
  if (kind === "done" || kind === "error") return "client end";
  return kind === "status" || kind === "changes" || kind === "text" ? `client ${kind}` : "client status";
}

function timeline(run, tmax, seek) {
  const lanes = lanesOf(run), left = 110, width = 900, row = 18, top = 8;
  const marks = run.v.filter(v => v[1] !== null).length;
  const height = top + lanes.length * row + 24 + marks * 13;
  const svg = el("svg:svg", {width, height, class: "timeline"});
  const x = t => left + (t / tmax) * (width - left - 50);
  lanes.forEach((name, i) => {
    const y = top + i * row + 9;
    svg.append(el("svg:text", {x: left - 6, y: y + 4, "text-anchor": "end", class: "lane"}, name));
    svg.append(el("svg:line", {x1: left, x2: width - 20, y1: y, y2: y, stroke: "#eee"}));
  });
  const bottom = top + lanes.length * row;
  for (const [at, source, kind, text] of run.ev) {
    if (kind === "fault") {
      svg.append(el("svg:line", {x1: x(at), x2: x(at), y1: top, y2: bottom, stroke: "#d62728", "stroke-dasharray": "4 3", "stroke-width": 2, class: "fault"}));
      const flip = x(at) > width * 0.6;
      svg.append(el("svg:text", {x: x(at) + (flip ? -3 : 3), y: top + 10, fill: "#d62728", "text-anchor": flip ? "end" : "start"}, `fault: ${text}`));
      continue;
    }
    if (kind === "meta") continue;
    const y = top + lanes.indexOf(laneOf(source, kind)) * row + 9;
    const dot = el("svg:circle", {cx: x(at), cy: y, r: source ? 2.5 : 3.5, fill: KIND_COLORS[kind] || "#777"});
    dot.append(el("svg:title", {}, `${at} ms ${kind}: ${text}`));
    dot.addEventListener("click", () => seek(at));
    svg.append(dot);
  }
  let k = 0;
  for (const [rule, at] of run.v) {
    if (at === null) continue;
    const y = bottom + 12 + k++ * 13;
    svg.append(el("svg:line", {x1: x(at), x2: x(at), y1: top, y2: y, stroke: "#e67e00", "stroke-width": 1.5, class: "violation"}));
    const flip = x(at) > width * 0.7;  // labels near the right edge read leftwards
    svg.append(el("svg:text", {x: x(at) + (flip ? -3 : 3), y: y + 3, fill: "#b35900", "text-anchor": flip ? "end" : "start"}, `${rule} @ ${at} ms`));
  }
  for (let t = 0; t <= 4; t++) {
    svg.append(el("svg:text", {x: x((tmax * t) / 4), y: bottom + 10 + k * 13 + 8, "text-anchor": "middle", class: "lane"}, `${fmt((tmax * t) / 4)} ms`));
  }
  const cursor = el("svg:line", {x1: left, x2: left, y1: 0, y2: bottom, stroke: "#06c", "stroke-width": 1.5, class: "cursor"});
  svg.append(cursor);
  return [svg, t => { cursor.setAttribute("x1", x(t)); cursor.setAttribute("x2", x(t)); }];
}

function panel(title, cls) {
  const box = el("div", {class: `panel ${cls}`});
  box.append(el("h4", {}, title));
  const body = el("pre");
  box.append(body);
  return [box, body];
}

function buildPlayer(card) {
  const run = DATA.runs[Number(card.dataset.run)];
  const host = card.querySelector(".player");
  const times = run.ev.map(e => e[0]).concat(run.v.map(v => v[1]).filter(v => v !== null));
  const tmax = Math.max(1, ...times);
  const controls = el("div", {class: "controls"});
  const play1 = el("button", {type: "button", class: "play1"}, "▶ 1x");
  const play10 = el("button", {type: "button", class: "play10"}, "▶ 10x");
  const slider = el("input", {type: "range", min: 0, max: tmax, step: "any", value: 0, class: "t"});
  const out = el("output", {}, "0 ms");
  controls.append(play1, play10, slider, out);
  const [statusBox, status] = panel("status line", "status");
  const [textBox, text] = panel("streamed text (what the user reads)", "text");
  const [codeBox, code] = panel("code panel", "code");
  const [endBox, end] = panel("terminal", "ending");
  const grid = el("div", {class: "grid"});
  grid.append(statusBox, endBox, textBox, codeBox);
  let raf = null;
  const show = t => {
    const s = stateAt(run, t);
    slider.value = t;
    out.textContent = `${t.toFixed(1)} ms`;
    status.textContent = s.status || "";
    text.textContent = s.text;
    code.textContent = s.code === null ? "" : s.code;
    codeBox.querySelector("h4").textContent = s.codeSource ? `code panel (${s.codeSource})` : "code panel";
    end.textContent = s.terminal ? `${s.terminal.kind} at ${s.terminal.at} ms${s.terminal.kind === "error" && s.terminal.text ? `; partial: ${s.terminal.text}` : ""}` : "";
    move(t);
  };
  const seek = t => { if (raf) cancelAnimationFrame(raf); raf = null; show(t); };
  const [svg, move] = timeline(run, tmax, seek);
  const play = speed => {
    if (raf) cancelAnimationFrame(raf);
    const start = performance.now(), from = Number(slider.value) >= tmax ? 0 : Number(slider.value);
    const step = now => {
      const t = Math.min(tmax, from + (now - start) * speed);
      show(t);
      raf = t < tmax ? requestAnimationFrame(step) : null;
    };
    raf = requestAnimationFrame(step);
  };
  play1.addEventListener("click", () => play(1));
  play10.addEventListener("click", () => play(10));
  slider.addEventListener("input", () => seek(Number(slider.value)));
  const list = el("ul", {class: "viol"});
  for (const [rule, at, message, seen] of run.v) {
    const li = el("li");
    const go = el("button", {type: "button"}, at === null ? "end" : `${at} ms`);
    go.addEventListener("click", () => seek(at === null ? tmax : at));
    li.append(go, ` ${rule}: ${message}`);
    if (seen) { li.append(" — the user saw "); li.append(el("code", {}, seen)); }
    list.append(li);
  }
  if (run.sut_error || (run.status !== null && run.status !== 200)) {
    list.append(el("li", {class: "bad"}, `SUT: ${run.status !== null && run.status !== 200 ? `HTTP ${run.status} ` : ""}${run.sut_error || ""}`));
  }
  if (run.shrunk) {
    const li = el("li");
    li.append("minimal regression test: ", el("a", {href: run.shrunk, class: "shrunk"}, run.shrunk));
    list.append(li);
  }
  const finalText = stateAt(run, tmax).text;
  const expected = run.expected !== null ? run.expected : run.final;
  const compare = el("div", {class: "panel diff"});
  compare.append(el("h4", {}, run.expected !== null ? "shown text vs the case's expected text" : "shown text vs the final message"));
  if (expected === null) compare.append(el("pre", {}, "(no expected or final text to compare with)"));
  else if (expected === finalText) compare.append(el("pre", {class: "same"}, "identical"));
  else compare.append(diff(finalText, expected));
  host.append(controls, svg, grid, list, compare);
  show(0);
}

document.querySelectorAll("details.run").forEach(card => {
  card.addEventListener("toggle", () => { if (card.open && !card.dataset.built) { card.dataset.built = "1"; buildPlayer(card); } });
});
// A link to #run-N opens that run.
function openHash() {
  const card = location.hash && document.querySelector(location.hash);
  if (card && card.tagName === "DETAILS") card.open = true;
}
window.addEventListener("hashchange", openHash);
const metricSelect = document.getElementById("metric");
if (metricSelect) metricSelect.addEventListener("change", drawDistributions);
drawDistributions();
openHash();
