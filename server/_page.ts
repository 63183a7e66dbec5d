/**
 * The page at `/`: type a question and watch the search tree grow (Server-Sent Events of
 * `POST /v1/reason`), or open a stored run's tree. Plain HTML, inline script and SVG; it loads
 * nothing from anywhere else.
 *
 * @module
 */

const STYLE = `
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1d2330;background:#f4f6f9}
header{display:flex;align-items:baseline;gap:1rem;padding:.7rem 1.2rem;background:#1d2330;color:#fff}
header h1{font-size:1.15rem;margin:0}header span{opacity:.7}header a{color:#9cc3ff;margin-left:auto}
main{display:grid;grid-template-columns:minmax(0,1fr) 22rem;gap:1rem;padding:1rem 1.2rem}
section{background:#fff;border:1px solid #dde2ea;border-radius:8px;padding:.8rem 1rem}
h2{font-size:.95rem;margin:.1rem 0 .6rem;color:#46506a;text-transform:uppercase;letter-spacing:.04em}
textarea{width:100%;min-height:4.2rem;font:inherit;padding:.5rem;border:1px solid #c9d1dd;border-radius:6px;resize:vertical}
.row{display:flex;flex-wrap:wrap;gap:.6rem;align-items:end;margin-top:.5rem}
label{display:flex;flex-direction:column;font-size:.78rem;color:#5a6478;gap:.15rem}
input,select{font:inherit;padding:.3rem .4rem;border:1px solid #c9d1dd;border-radius:5px;width:5.6rem}
button{font:inherit;padding:.4rem 1rem;border-radius:6px;border:1px solid #1565c0;background:#1565c0;color:#fff;cursor:pointer}
button.secondary{background:#fff;color:#1565c0}button:disabled{opacity:.5;cursor:default}
#status{margin:.6rem 0 0;color:#46506a;min-height:1.2rem}
#treebox{overflow:auto;max-height:68vh;min-height:22rem;border-top:1px solid #eef1f5;margin-top:.6rem}
svg .edge{stroke:#b8c0cc;stroke-width:1.4;fill:none}
svg .edge.pruned{stroke:#d6d9de;stroke-dasharray:4 3}
svg .edge.best{stroke:#1565c0;stroke-width:3.4}
svg .node{stroke:#fff;stroke-width:1.5;cursor:pointer}
svg .node.pruned{fill:#cfd3d9 !important;opacity:.75}
svg .node.best{stroke:#1565c0;stroke-width:3}
svg .node.selected{stroke:#111;stroke-width:3}
svg .node.terminal{stroke-dasharray:2 1}
svg text{font-size:10px;fill:#5a6478;pointer-events:none}
.legend{display:flex;gap:1rem;align-items:center;font-size:.78rem;color:#5a6478;flex-wrap:wrap}
.swatch{display:inline-block;width:.8rem;height:.8rem;border-radius:50%;vertical-align:-2px;margin-right:.25rem}
.scale{display:inline-block;width:6rem;height:.6rem;border-radius:3px;background:linear-gradient(90deg,hsl(0,70%,48%),hsl(60,70%,45%),hsl(120,60%,38%));vertical-align:middle;margin:0 .3rem}
#answer{font-size:1.05rem;font-weight:600;margin:.2rem 0 .5rem}
ol#steps{padding-left:1.3rem;margin:.3rem 0}ol#steps li{margin:.25rem 0;white-space:pre-wrap;word-break:break-word}
.reward{display:inline-block;min-width:2.6rem;text-align:center;border-radius:4px;color:#fff;font-size:.75rem;margin-right:.3rem;padding:0 .2rem}
#detail pre{white-space:pre-wrap;word-break:break-word;background:#f5f7fa;padding:.5rem;border-radius:5px;max-height:14rem;overflow:auto;margin:.3rem 0}
.muted{color:#7a8396}.err{color:#b3261e}
aside section+section{margin-top:1rem}
`;

const SCRIPT = `
"use strict";
const $ = (id) => document.getElementById(id);
const NS = "http://www.w3.org/2000/svg";
const state = { nodes: new Map(), best: [], selected: null, ctl: null, pending: false };

function color(r) {
  if (r === null || r === undefined || Number.isNaN(r)) return "#46506a";
  const x = Math.max(0, Math.min(1, r));
  return "hsl(" + Math.round(120 * x) + "," + (x > .5 ? 60 : 70) + "%," + (x > .5 ? 38 : 46) + "%)";
}
function token() { return $("token").value.trim(); }
function headers() {
  const h = { "content-type": "application/json" };
  if (token()) h.authorization = "Bearer " + token();
  return h;
}
function status(text, cls) { const s = $("status"); s.textContent = text; s.className = cls || ""; }

function reset() {
  state.nodes = new Map(); state.best = []; state.selected = null;
  $("answer").textContent = ""; $("steps").textContent = ""; $("detail").innerHTML = '<p class="muted">Click a node to read its step.</p>';
  render();
}

function addNode(n) {
  const old = state.nodes.get(n.id);
  const node = Object.assign(old || { children: [] }, n);
  if (!old) {
    state.nodes.set(n.id, node);
    const p = state.nodes.get(n.parent);
    if (p && !p.children.includes(n.id)) p.children.push(n.id);
  }
}

function layout() {
  const pos = new Map(); let leaf = 0; let depth = 0;
  const visit = (id, d) => {
    const n = state.nodes.get(id); if (!n) return 0;
    depth = Math.max(depth, d);
    const kids = n.children.filter((c) => state.nodes.has(c));
    let x;
    if (kids.length === 0) x = leaf++;
    else { const xs = kids.map((c) => visit(c, d + 1)); x = (xs[0] + xs[xs.length - 1]) / 2; }
    pos.set(id, { x, y: d });
    return x;
  };
  const roots = [...state.nodes.values()].filter((n) => !state.nodes.has(n.parent));
  for (const r of roots) visit(r.id, 0);
  return { pos, leaves: Math.max(leaf, 1), depth };
}

let frame = 0;
function render() { if (!frame) frame = requestAnimationFrame(() => { frame = 0; draw(); }); }

function draw() {
  const { pos, leaves, depth } = layout();
  const box = $("treebox");
  const dx = Math.max(18, Math.min(46, (box.clientWidth - 40) / leaves)), dy = 64;
  const W = Math.max(box.clientWidth - 4, leaves * dx + 40), H = (depth + 1) * dy + 40;
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("width", W); svg.setAttribute("height", H); svg.id = "tree";
  const onBest = new Set(state.best);
  const X = (p) => 20 + p.x * dx + dx / 2, Y = (p) => 24 + p.y * dy;
  for (const n of state.nodes.values()) {
    const p = pos.get(n.id), q = pos.get(n.parent);
    if (!p || !q) continue;
    const e = document.createElementNS(NS, "path");
    const mid = (Y(p) + Y(q)) / 2;
    e.setAttribute("d", "M" + X(q) + "," + Y(q) + " C" + X(q) + "," + mid + " " + X(p) + "," + mid + " " + X(p) + "," + Y(p));
    e.setAttribute("class", "edge" + (n.pruned ? " pruned" : "") + (onBest.has(n.id) && onBest.has(n.parent) ? " best" : ""));
    svg.append(e);
  }
  for (const n of state.nodes.values()) {
    const p = pos.get(n.id); if (!p) continue;
    const c = document.createElementNS(NS, "circle");
    c.setAttribute("cx", X(p)); c.setAttribute("cy", Y(p)); c.setAttribute("r", n.id === 0 ? 9 : 7);
    c.setAttribute("fill", color(n.reward));
    c.setAttribute("class", "node" + (n.pruned ? " pruned" : "") + (onBest.has(n.id) ? " best" : "") + (n.terminal ? " terminal" : "") + (state.selected === n.id ? " selected" : ""));
    c.dataset.id = n.id;
    const t = document.createElementNS(NS, "title");
    t.textContent = (n.id === 0 ? "question" : "step " + n.depth + " · reward " + fmt(n.reward)) + (n.pruned ? " · pruned" : "") + "\\n" + (n.text || "").slice(0, 300);
    c.append(t);
    c.addEventListener("click", () => select(n.id));
    svg.append(c);
    if (n.id !== 0 && dx >= 30) {
      const l = document.createElementNS(NS, "text");
      l.setAttribute("x", X(p) + 9); l.setAttribute("y", Y(p) + 3); l.textContent = fmt(n.reward);
      svg.append(l);
    }
  }
  box.replaceChildren(svg);
  $("count").textContent = state.nodes.size + " nodes";
}

function fmt(r) { return r === null || r === undefined || Number.isNaN(r) ? "–" : Number(r).toFixed(2); }

function select(id) {
  state.selected = id; const n = state.nodes.get(id); render();
  if (!n) return;
  const d = $("detail"); d.textContent = "";
  const h = document.createElement("div");
  h.innerHTML = "<b>" + (id === 0 ? "Question" : "Step " + n.depth) + "</b> <span class='reward'></span> " + (n.pruned ? "<span class='muted'>pruned</span> " : "") + (n.terminal ? "<span class='muted'>final step</span>" : "");
  const badge = h.querySelector(".reward"); badge.textContent = fmt(n.reward); badge.style.background = color(n.reward);
  const pre = document.createElement("pre"); pre.textContent = id === 0 ? ($("question").value || n.text || "") : n.text;
  d.append(h, pre);
  const meta = document.createElement("div"); meta.className = "muted";
  meta.textContent = "node " + n.id + " · parent " + n.parent + (n.visits !== undefined ? " · visits " + n.visits + " · value " + fmt(n.value) : "") + (n.tokens !== undefined ? " · " + n.tokens + " tokens" : "");
  d.append(meta);
}

function showSteps(steps) {
  const ol = $("steps"); ol.textContent = "";
  for (const s of steps) {
    const li = document.createElement("li");
    const b = document.createElement("span"); b.className = "reward"; b.textContent = fmt(s.reward); b.style.background = color(s.reward);
    li.append(b, document.createTextNode(s.text)); ol.append(li);
  }
}

function showResult(r) {
  $("answer").textContent = r.answer !== null ? "Answer: " + r.answer : "No final answer stated";
  showSteps(r.steps);
  status("done: " + r.stats.nodes + " nodes, " + r.stats.tokens + " tokens, " + r.stats.seconds.toFixed(1) + " s" + (r.stats.simulations !== null ? ", " + r.stats.simulations + " simulations" : "") + (r.score !== null ? ", score " + fmt(r.score) : ""));
  $("result").dataset.done = "1";
}

function onEvent(type, data) {
  if (type === "queued") status("queued behind " + data.waiting + " request(s)…");
  else if (type === "start") status("searching with " + data.strategy + " (" + data.model + ")…");
  else if (type === "node") { addNode(data); render(); }
  else if (type === "pruned") { for (const id of data.nodes) { const n = state.nodes.get(id); if (n) n.pruned = true; } render(); }
  else if (type === "best") { state.best = data.path; render(); }
  else if (type === "score") status("searching… " + data.simulations + " simulations, " + data.nodes + " nodes, best value " + fmt(data.best_value));
  else if (type === "result") {
    if (data.tree) for (const n of data.tree) addNode(n);
    if (state.nodes.size <= 1) synthesize(data);
    showResult(data); render();
  } else if (type === "error") status("error: " + data.error.message, "err");
}

/** Strategies without live events: draw the chosen path alone. */
function synthesize(r) {
  let parent = 0;
  r.steps.forEach((s, i) => { addNode({ id: i + 1, parent, depth: i + 1, text: s.text, reward: s.reward, pruned: false, terminal: i === r.steps.length - 1 }); parent = i + 1; });
  state.best = [0].concat(r.steps.map((_, i) => i + 1));
}

async function run(ev) {
  ev.preventDefault();
  const question = $("question").value.trim();
  if (!question) { status("type a question first", "err"); return; }
  localStorage.setItem("arborist-token", token());
  reset(); $("result").dataset.done = "";
  addNode({ id: 0, parent: -1, depth: 0, text: question, reward: null, pruned: false, terminal: false }); render();
  const body = { question, strategy: $("strategy").value, stream: true, budget: {} };
  const num = (id) => { const v = $(id).value.trim(); return v === "" ? undefined : Number(v); };
  if (num("sims") !== undefined) body.budget.simulations = num("sims");
  if (num("seconds") !== undefined) body.budget.seconds = num("seconds");
  if (num("k") !== undefined && ["mcts", "beam"].includes(body.strategy)) body.k = num("k");
  if (num("steptok") !== undefined) body.max_step_tokens = num("steptok");
  if (num("seed") !== undefined) body.seed = num("seed");
  state.ctl = new AbortController(); $("go").disabled = true; $("stop").disabled = false;
  status("sending…");
  try {
    const res = await fetch("/v1/reason", { method: "POST", headers: headers(), body: JSON.stringify(body), signal: state.ctl.signal });
    if (!res.ok) { const e = await res.json().catch(() => ({ error: { message: res.statusText } })); status("error " + res.status + ": " + e.error.message, "err"); return; }
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let at;
      while ((at = buf.indexOf("\\n\\n")) >= 0) {
        const block = buf.slice(0, at); buf = buf.slice(at + 2);
        let type = "message"; const data = [];
        for (const line of block.split("\\n")) {
          if (line.startsWith("event:")) type = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
        }
        if (data.length) onEvent(type, JSON.parse(data.join("\\n")));
      }
    }
  } catch (e) {
    status(e.name === "AbortError" ? "stopped" : "error: " + e.message, e.name === "AbortError" ? "" : "err");
  } finally {
    $("go").disabled = false; $("stop").disabled = true; state.ctl = null;
  }
}

async function api(path) {
  const res = await fetch(path, { headers: headers() });
  const body = await res.json();
  if (!res.ok) throw new Error(body.error ? body.error.message : res.statusText);
  return body;
}

async function loadRuns() {
  try {
    const runs = (await api("/v1/runs?limit=100")).data;
    const sel = $("runs"); sel.textContent = "";
    for (const r of runs) { const o = document.createElement("option"); o.value = r.id; o.textContent = r.id + " (" + r.strategy + ", " + r.status + ")"; sel.append(o); }
    if (runs.length) await loadProblems(); else status("no stored runs");
  } catch (e) { status("error: " + e.message, "err"); }
}

async function loadProblems() {
  try {
    const run = await api("/v1/runs/" + encodeURIComponent($("runs").value));
    const sel = $("problems"); sel.textContent = "";
    for (const p of run.problems) { const o = document.createElement("option"); o.value = p.problemId; o.textContent = p.problemId + ": " + p.question.slice(0, 60); o.dataset.question = p.question; sel.append(o); }
  } catch (e) { status("error: " + e.message, "err"); }
}

async function openTree() {
  const sel = $("problems"); if (!sel.value) return;
  try {
    const r = await api("/v1/runs/" + encodeURIComponent($("runs").value) + "/tree?problem=" + encodeURIComponent(sel.value));
    const t = r.trees[r.trees.length - 1];
    reset(); $("question").value = sel.selectedOptions[0].dataset.question || "";
    for (const n of t.nodes) addNode(Object.assign({}, n, { children: [] }));
    for (const n of t.nodes) { const p = state.nodes.get(n.parent); if (p && !p.children.includes(n.id)) p.children.push(n.id); }
    state.best = chosenPath();
    const path = state.best.slice(1).map((id) => state.nodes.get(id));
    showSteps(path.map((n) => ({ text: n.text, reward: n.reward })));
    $("answer").textContent = "Chosen path (stored)";
    render();
    status("stored run " + r.run_id + ", problem " + t.problem_id + ": " + t.nodes.length + " nodes (" + t.kind + " tree)");
  } catch (e) { status("error: " + e.message, "err"); }
}

/** The stored tree's chosen path: from the root, the live child of best mean value. */
function chosenPath() {
  const path = [0]; let n = state.nodes.get(0);
  while (n) {
    const live = n.children.map((c) => state.nodes.get(c)).filter((c) => c && !c.pruned);
    if (!live.length) break;
    n = live.reduce((a, b) => (b.value > a.value ? b : a)); path.push(n.id);
  }
  return path;
}

$("form").addEventListener("submit", run);
$("stop").addEventListener("click", () => state.ctl && state.ctl.abort());
$("loadruns").addEventListener("click", loadRuns);
$("runs").addEventListener("change", loadProblems);
$("opentree").addEventListener("click", openTree);
$("token").value = localStorage.getItem("arborist-token") || "";
window.addEventListener("resize", render);
reset();
`;

/** The page at `/`. */
export const PAGE_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>arborist · live search</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>${STYLE}</style></head><body>
<header><h1>arborist</h1><span>reward-guided reasoning · watch the search tree grow</span><a href="/docs">API docs</a></header>
<main>
<div>
<section>
<form id="form">
<textarea id="question" placeholder="Ask a question, e.g. Tom has 3 apples and buys 4 more. How many apples does he have?"></textarea>
<div class="row">
<label>strategy<select id="strategy"><option>mcts</option><option>greedy</option><option>best-of-n</option><option>step-greedy</option><option>beam</option></select></label>
<label>simulations<input id="sims" type="number" min="1" value="16"></label>
<label>children (k)<input id="k" type="number" min="1" value="4"></label>
<label>step tokens<input id="steptok" type="number" min="1" value="48"></label>
<label>seconds<input id="seconds" type="number" min="1" placeholder="default"></label>
<label>seed<input id="seed" type="number" min="0" placeholder="random"></label>
<label>token<input id="token" type="password" placeholder="if required"></label>
<button id="go" type="submit">Search</button><button id="stop" class="secondary" type="button" disabled>Stop</button>
</div>
</form>
<p id="status" class="muted"></p>
</section>
<section style="margin-top:1rem">
<h2>Search tree · <span id="count" class="muted"></span></h2>
<div class="legend"><span>reward<span class="scale"></span>0 → 1</span><span><span class="swatch" style="background:#cfd3d9"></span>pruned</span><span><span class="swatch" style="background:#fff;border:3px solid #1565c0"></span>chosen path</span><span><span class="swatch" style="background:#46506a"></span>question</span></div>
<div id="treebox"></div>
</section>
</div>
<aside>
<section id="result"><h2>Answer</h2><div id="answer"></div><ol id="steps"></ol></section>
<section><h2>Selected step</h2><div id="detail"></div></section>
<section><h2>Stored runs</h2>
<div class="row"><button id="loadruns" class="secondary" type="button">Load runs</button></div>
<div class="row"><label style="width:100%">run<select id="runs" style="width:100%"></select></label></div>
<div class="row"><label style="width:100%">problem<select id="problems" style="width:100%"></select></label></div>
<div class="row"><button id="opentree" class="secondary" type="button">Open tree</button></div>
</section>
</aside>
</main>
<script>${SCRIPT}</script>
</body></html>
`;
