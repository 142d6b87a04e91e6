// The script page: an editor with line numbers and Tab indents, Check
// (compiles without saving) and Dry run (runs the source on a node without
// writing). An error's line is marked in the gutter and selected.
const source = document.getElementById("script-source");
const gutter = document.getElementById("gutter");
const csrf = document.querySelector("input[name=csrf]").value;
let errorLine = Number(document.querySelector(".editor").dataset.line) || 0;
let tabLeaves = false;

function drawGutter() {
  const n = source.value.split("\n").length;
  gutter.replaceChildren();
  for (let i = 1; i <= n; i++) {
    const span = document.createElement("span");
    span.textContent = i;
    if (i === errorLine) span.className = "err-line";
    gutter.append(span, "\n");
  }
  gutter.scrollTop = source.scrollTop;
}

// markLine marks line n (0: none) and selects it in the editor.
function markLine(n) {
  errorLine = n;
  drawGutter();
  if (!n) return;
  const lines = source.value.split("\n");
  const start = lines.slice(0, n - 1).reduce((a, l) => a + l.length + 1, 0);
  source.focus();
  source.setSelectionRange(start, start + (lines[n - 1] || "").length);
  const lineHeight = source.scrollHeight / Math.max(lines.length, 1);
  source.scrollTop = Math.max(0, (n - 3) * lineHeight);
}

function lineOf(message) {
  const m = /(?:^|\s)line (\d+)/.exec(message || "");
  return m ? Number(m[1]) : 0;
}

source.addEventListener("input", () => { errorLine = 0; drawGutter(); });
source.addEventListener("scroll", () => { gutter.scrollTop = source.scrollTop; });
source.addEventListener("keydown", (e) => {
  if (e.key === "Escape") { tabLeaves = true; return; }
  if (e.key !== "Tab" || tabLeaves) { tabLeaves = false; return; }
  e.preventDefault();
  const v = source.value, s = source.selectionStart, end = source.selectionEnd;
  const lineStart = v.lastIndexOf("\n", s - 1) + 1;
  if (!e.shiftKey && s === end) {
    source.setRangeText("  ", s, end, "end");
  } else {
    // Indent or outdent every line the selection touches.
    const block = v.slice(lineStart, end);
    const changed = e.shiftKey ? block.replace(/^ {1,2}/gm, "") : block.replace(/^/gm, "  ");
    source.setRangeText(changed, lineStart, end, "select");
  }
  drawGutter();
});

async function post(url, body) {
  const res = await fetch(url, {method: "POST",
    headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf}, body: JSON.stringify(body)});
  const v = await res.json();
  if (!res.ok) throw new Error((v.error && v.error.message) || res.statusText);
  return v;
}

document.getElementById("script-check").addEventListener("click", async () => {
  const out = document.getElementById("check-result");
  try {
    const v = await post("/ui/check", {name: document.getElementById("script-name").value, source: source.value});
    out.className = v.ok ? "ok" : "err";
    out.textContent = v.ok ? "Compiles." : v.error;
    markLine(v.ok ? 0 : lineOf(v.error));
  } catch (err) {
    out.className = "err";
    out.textContent = err.message;
  }
});

document.getElementById("try-run").addEventListener("click", async () => {
  const ns = location.pathname.split("/")[3];
  const box = document.getElementById("try-result");
  const show = (id, text) => { document.getElementById(id).textContent = text; };
  box.hidden = false;
  show("try-error", "Running…");
  try {
    const v = await post("/ui/ns/" + encodeURIComponent(ns) + "/try", {
      node: document.getElementById("try-node").value, script: document.getElementById("script-name").value,
      source: source.value, key: document.getElementById("try-key").value, event: document.getElementById("try-event").value});
    show("try-error", v.error || "");
    show("try-returned", v.returned);
    show("try-logs", v.logs.join("\n") || "(none)");
    show("try-writes", v.writes.join("\n") || "(none)");
    show("try-time", v.run_us + " µs");
    markLine(v.line || 0);
  } catch (err) {
    show("try-error", err.message);
  }
});

drawGutter();
if (errorLine) markLine(errorLine);
