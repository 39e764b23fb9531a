/*
 * app.js -- the EmbedDb console's behaviour: the tensor form (store, then
 * load or preview with the seed's summary line; 2-D tensors as a heatmap,
 * 1-D as a sparkline), the live pipeline view polled from /api/store
 * (WAL -> MemTable -> SSTs -> snapshots -> upload), the agent's counters,
 * the tensor listing, and the Python demo's baseline vs EmbedDb panel.
 * Plain JS, no build step, no network beyond this server (console/API.md).
 * The poll period is 1 s; ?poll=MS in the page's URL changes it.
 */
"use strict";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const POLL_MS = Math.max(100, Number(params.get("poll")) || 1000);
let lastStore = null;
let listAfter = null;

$("token").value = localStorage.getItem("embeddb-token") || "";
$("token").addEventListener("change", () => localStorage.setItem("embeddb-token", $("token").value));

async function api(method, path, body, ctype) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = ctype || "application/json";
  const tok = $("token").value;
  if (method === "POST" && tok) headers["Authorization"] = "Bearer " + tok;
  const r = await fetch(path, { method, headers, body, cache: "no-store" });
  const doc = await r.json();
  if (!r.ok) throw new Error(`${doc.error} (${r.status} ${doc.code})`);
  return doc;
}

function fmtBytes(n) {
  if (n === null || n === undefined) return "–";
  if (n < 1024) return n + " B";
  if (n < 1048576) return (n / 1024).toFixed(1) + " KiB";
  return (n / 1048576).toFixed(2) + " MiB";
}

function showError(msg) {
  $("error").hidden = !msg;
  $("error").textContent = msg || "";
}

/* ---- the form ------------------------------------------------------------ */

function parseShape(s) {
  s = s.trim();
  if (!s) return [];
  return s.split(/[x,× ]+/).map((d) => {
    if (!/^\d+$/.test(d)) throw new Error(`shape '${s}': dimensions are whole numbers (32x32)`);
    return Number(d);
  });
}

function makeValues(fill, dtype, n) {
  const isInt = /int|bool/.test(dtype);
  const out = new Array(n);
  for (let i = 0; i < n; i++) {
    if (fill === "ramp") out[i] = dtype === "bool" ? i % 2 : isInt ? i % 100 : i / Math.max(1, n - 1);
    else out[i] = dtype === "bool" ? (Math.random() < 0.5 ? 0 : 1)
      : isInt ? Math.floor(Math.random() * 100) : Math.round(Math.random() * 1e4) / 1e4;
  }
  return out;
}

function addStep(text) {
  const li = document.createElement("li");
  li.textContent = text;
  $("journey").appendChild(li);
}

$("tensor-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  showError("");
  $("journey").innerHTML = "";
  try {
    const shape = parseShape($("shape").value);
    const n = shape.reduce((a, b) => a * b, 1);
    const dtype = $("dtype").value;
    let data;
    if ($("fill").value === "typed") {
      data = $("values").value.split(",").map((v) => v.trim()).filter((v) => v !== "").map(Number);
      if (data.length !== n) throw new Error(`shape ${shape.join("x") || "()"} needs ${n} values, ${data.length} typed`);
    } else {
      data = makeValues($("fill").value, dtype, n);
    }
    const body = JSON.stringify({ key: $("key").value, name: $("name").value, dtype, shape, data });
    addStep(`serialized: ${n} ${dtype} values as ${fmtBytes(body.length)} of JSON`);
    const r = await api("POST", "/api/tensors/store", body);
    const t = r.tensors[0];
    addStep(`WAL append: ${r.wal} at offset ${r.offset}, ${fmtBytes(r.bytes_written)} written, ${r.fsyncs} fsync → seq ${t.seq}`);
    addStep(`MemTable: indexed (${fmtBytes(t.bytes)} of tensor data, not copied)`);
    if (r.flushed) addStep("flush: the MemTable reached memtable_max and was sealed into an SST");
    await load();
    addStep("preview: loaded back (below)");
    refresh();
    refreshList(true);
  } catch (e) {
    showError(e.message);
  }
});

$("load-btn").addEventListener("click", () => { showError(""); load().catch((e) => showError(e.message)); });

async function load() {
  const key = $("key").value;
  const pv = $("preview").value;
  const q = new URLSearchParams({ key });
  if (pv !== "") q.set("preview", pv);
  const t = await api("GET", "/api/tensors/load?" + q);
  $("loaded").hidden = false;
  $("summary").textContent = t.summary;
  $("meta").textContent = `key ${t.key} · ${t.dtype} [${t.shape.join(", ")}] · ${fmtBytes(t.bytes)} · seq ${t.seq}` +
    (t.preview ? ` · preview of ${t.values.length} of ${t.numel} values` : "");
  draw(t);
  return t;
}

function draw(t) {
  const hm = $("heatmap"), sp = $("sparkline");
  hm.hidden = sp.hidden = true;
  const v = t.values.map((x) => (x === null ? NaN : x));
  if (!v.length) return;
  let lo = Infinity, hi = -Infinity;
  for (const x of v) if (isFinite(x)) { lo = Math.min(lo, x); hi = Math.max(hi, x); }
  const span = hi > lo ? hi - lo : 1;
  if (t.shape.length === 2 && !t.preview) {
    const [h, w] = t.shape;
    const off = document.createElement("canvas");
    off.width = w; off.height = h;
    const ctx = off.getContext("2d");
    const img = ctx.createImageData(w, h);
    for (let i = 0; i < w * h; i++) {
      const g = isFinite(v[i]) ? Math.round(255 * (v[i] - lo) / span) : 0;
      img.data[4 * i] = g; img.data[4 * i + 1] = g; img.data[4 * i + 2] = g; img.data[4 * i + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
    const scale = Math.max(1, Math.floor(256 / Math.max(w, h)));
    hm.width = w * scale; hm.height = h * scale;
    const c = hm.getContext("2d");
    c.imageSmoothingEnabled = false;
    c.drawImage(off, 0, 0, hm.width, hm.height);
    hm.hidden = false;
  } else if (t.shape.length <= 1 || t.preview) {
    const c = sp.getContext("2d");
    c.clearRect(0, 0, sp.width, sp.height);
    c.strokeStyle = "#2b6cb0";
    c.lineWidth = 1.5;
    c.beginPath();
    v.forEach((x, i) => {
      const px = v.length > 1 ? (i / (v.length - 1)) * (sp.width - 4) + 2 : sp.width / 2;
      const py = sp.height - 4 - ((isFinite(x) ? x : lo) - lo) / span * (sp.height - 8);
      if (i) c.lineTo(px, py); else c.moveTo(px, py);
    });
    c.stroke();
    sp.hidden = false;
  }
}

/* ---- the pipeline view -------------------------------------------------- */

function pulse(id) {
  const el = $(id);
  el.classList.remove("pulse");
  void el.offsetWidth;
  el.classList.add("pulse");
}

function row(table, label, value, cls) {
  const tr = document.createElement("tr");
  const a = document.createElement("td"), b = document.createElement("td");
  a.textContent = label;
  b.textContent = value;
  b.className = "num" + (cls ? " " + cls : "");
  tr.append(a, b);
  table.appendChild(tr);
}

function renderStore(s) {
  const prev = lastStore;
  lastStore = s;
  $("role").textContent = s.role === "agent" ? "embeddb-agent" : "embeddb serve";
  $("dir").textContent = s.dir;
  $("wal-name").textContent = s.wal ? s.wal.name : "–";
  $("wal-bytes").textContent = s.wal ? `${fmtBytes(s.wal.bytes)} · ${s.wal.tensors} tensors` : "";
  const pct = s.memtable.max ? Math.min(100, 100 * s.memtable.bytes / s.memtable.max) : 0;
  /* a sliver stays visible for a MemTable that holds anything */
  $("memtable-bar").style.width = (s.memtable.bytes ? Math.max(pct, 0.5) : 0).toFixed(1) + "%";
  $("memtable-text").textContent =
    `${s.memtable.tensors} tensors · ${fmtBytes(s.memtable.bytes)} of ${fmtBytes(s.memtable.max)} (${pct.toFixed(pct < 1 ? 2 : 1)}%)`;
  $("sst-count").textContent = `(${s.ssts_total})`;
  const ssts = $("sst-list");
  ssts.innerHTML = "";
  for (const t of s.ssts.slice().reverse()) {
    const li = document.createElement("li");
    li.className = "sst";
    li.textContent = `${t.name} · ${t.tensors} · ${fmtBytes(t.bytes)} · ${t.first_key}…${t.last_key}`;
    ssts.appendChild(li);
  }
  const snaps = $("snap-list");
  snaps.innerHTML = "";
  for (const x of s.snapshots.slice().reverse()) {
    const li = document.createElement("li");
    li.className = "state-" + x.state;
    li.textContent = `${x.name} · ${x.state} · ${x.tensors} tensors` + (x.error ? ` · ${x.error}` : "");
    snaps.appendChild(li);
  }
  if (!s.snapshots.length) snaps.innerHTML = "<li class='muted'>none</li>";
  const st = $("stats");
  st.innerHTML = "";
  row(st, "tensors (index entries)", s.stats.tensors);
  row(st, "batches / tensors saved since open", `${s.stats.batches} / ${s.stats.tensors_saved}`);
  row(st, "bytes written / fsyncs / flushes", `${fmtBytes(s.stats.bytes_written)} / ${s.stats.fsyncs} / ${s.stats.flushes}`);
  row(st, "live files", fmtBytes(s.stats.disk_bytes));
  if (prev) {
    if (s.stats.batches !== prev.stats.batches) pulse("stage-wal"), pulse("stage-memtable");
    if (s.ssts_total !== prev.ssts_total) pulse("stage-sst");
    if (s.snapshots.length !== prev.snapshots.length) pulse("stage-snap");
  }
  $("snapshot-btn").hidden = s.role !== "agent";
  const a = s.agent;
  $("agent-panel").hidden = !a;
  if (a) {
    const t = $("agent-stats");
    t.innerHTML = "";
    row(t, "device", a.device_id);
    row(t, "broker", a.connected ? (a.subscribed ? "connected, subscribed" : "connected") : "disconnected",
        a.connected ? "" : "missing");
    row(t, "received / stored (MQTT) / stored (HTTP)", `${a.received} / ${a.stored} / ${a.http_stored}`);
    row(t, "pending (read, not yet stored)", a.pending);
    row(t, "budget used", a.budget.max_disk ? `${fmtBytes(a.budget.used)} of ${fmtBytes(a.budget.max_disk)}`
      : `${fmtBytes(a.budget.used)} (no max_disk)`);
    row(t, "upload", a.upload.enabled ? `${a.upload.uploaded} uploaded, ${a.upload.failed} failed, ${fmtBytes(a.upload.bytes)}` +
      (a.upload.current ? ` · now ${a.upload.current}` : "") : "off (no upload section)");
    if (a.upload.last_error) row(t, "last upload error", a.upload.last_error, "missing");
    const r = $("rejected");
    r.innerHTML = "";
    for (const [k, n] of Object.entries(a.rejected)) row(r, k, n, n ? "missing" : "");
  }
  $("updated").textContent = "updated " + new Date().toLocaleTimeString();
}

async function refresh() {
  try {
    renderStore(await api("GET", "/api/store"));
    $("conn").textContent = "live";
    $("conn").className = "tag ok";
  } catch (e) {
    $("conn").textContent = "offline: " + e.message;
    $("conn").className = "tag bad";
  }
}

$("flush-btn").addEventListener("click", async () => {
  try {
    const r = await api("POST", "/api/store/flush");
    $("action-result").textContent = r.sst ? `flushed ${r.tensors} to ${r.sst}` : "nothing to flush";
  } catch (e) {
    $("action-result").textContent = e.message;
  }
  refresh();
  refreshList(true);
});

$("snapshot-btn").addEventListener("click", async () => {
  try {
    const r = await api("POST", "/api/snapshot");
    $("action-result").textContent = "sealed " + r.snapshot;
  } catch (e) {
    $("action-result").textContent = e.message;
  }
  refresh();
});

/* ---- the listing -------------------------------------------------------- */

async function refreshList(reset) {
  if (reset) {
    listAfter = null;
    document.querySelector("#tensor-list tbody").innerHTML = "";
  }
  const q = new URLSearchParams({ limit: 50 });
  if ($("prefix").value) q.set("prefix", $("prefix").value);
  if (listAfter) q.set("after", listAfter);
  try {
    const r = await api("GET", "/api/tensors?" + q);
    const tb = document.querySelector("#tensor-list tbody");
    for (const t of r.tensors) {
      const tr = document.createElement("tr");
      for (const v of [t.key, t.name, t.dtype, t.shape.join("x") || "()", fmtBytes(t.bytes), t.seq, t.file]) {
        const td = document.createElement("td");
        td.textContent = v;
        tr.appendChild(td);
      }
      tr.addEventListener("click", () => {
        $("key").value = t.key;
        $("name").value = t.name;
        load().catch((e) => showError(e.message));
      });
      tb.appendChild(tr);
    }
    listAfter = r.next_after;
    $("more-btn").hidden = !listAfter;
  } catch (e) {
    showError(e.message);
  }
}
$("more-btn").addEventListener("click", () => refreshList(false));
$("prefix").addEventListener("change", () => refreshList(true));

/* ---- the DL-model panel ------------------------------------------------- */

async function refreshDemo() {
  const d = await api("GET", "/api/demo");
  $("demo-dir").textContent = d.dir || "(not configured)";
  const files = Object.fromEntries(d.files.map((f) => [f.name, f]));
  const base = files["weights_baseline.json"], pay = files["tensor_payload.txt"];
  const t = $("demo-table");
  t.innerHTML = "<tr><th></th><th>baseline (json)</th><th>EmbedDb</th></tr>";
  const line = (label, a, b) => {
    const tr = document.createElement("tr");
    for (const [v, cls] of [[label, ""], a, b]) {
      const td = document.createElement("td");
      td.textContent = v;
      if (cls) td.className = cls;
      tr.appendChild(td);
    }
    t.appendChild(tr);
  };
  const miss = ["missing", "missing"];
  line("file", base.found ? ["weights_baseline.json", ""] : miss,
       pay.found ? ["tensor_payload.txt → store", ""] : miss);
  line("bytes on disk", base.found ? [fmtBytes(base.bytes), "num"] : miss,
       d.store.found ? [fmtBytes(d.store.bytes), "num"] : miss);
  if (pay.found) {
    const tb = pay.values * 4;
    line("tensors", ["", ""], [pay.tensors.map((x) => `${x.name} ${x.shape}`).join(", "), ""]);
    line("bytes per float32 byte", base.found ? [(base.bytes / tb).toFixed(2), "num"] : miss,
         d.store.found ? [(d.store.bytes / tb).toFixed(2), "num"] : miss);
  }
  line("checksummed, crash-safe batch", ["no", ""], ["yes", ""]);
  line("keeps dtypes", ["no (JSON numbers)", ""], ["yes", ""]);
  const missing = d.files.filter((f) => !f.found).map((f) => f.name);
  if (!d.store.found) missing.push("store/");
  $("demo-missing").hidden = !missing.length;
  $("demo-missing").textContent = missing.length
    ? `Missing: ${missing.join(", ")}. Regenerate with: ${d.regenerate}` : "";
}

refresh();
refreshList(true);
refreshDemo().catch((e) => { $("demo-missing").hidden = false; $("demo-missing").textContent = e.message; });
setInterval(refresh, POLL_MS);
