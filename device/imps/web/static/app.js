"use strict";
// The box's page: Play (controls, the live picture by SSE), Models, Logs, Config.
// Every change is a POST with the session's CSRF token; the box answers through its status.
let csrf = "";
let ranges = {};
const points = [];                 // [t, "p"|"m", x1..xn], the last 30 s
const WINDOW = 30;
let updates = 0, lastStatus = null;

const $ = (id) => document.getElementById(id);

async function api(path, body, raw) {
  const options = body === undefined ? {} : {
    method: "POST",
    headers: raw ? {"X-CSRF-Token": csrf} : {"Content-Type": "application/json", "X-CSRF-Token": csrf},
    body: raw ? body : JSON.stringify(body),
  };
  const response = await fetch(path, options);
  if (response.status === 401) { window.location.replace("/login"); throw new Error("logged out"); }
  const data = await response.json().catch(() => ({error: `answer ${response.status}`}));
  if (!response.ok) throw new Error(data.error || `refused (${response.status})`);
  return data;
}

function say(id, text, ok) {
  const el = $(id);
  el.textContent = text;
  el.className = "message " + (ok ? "good" : "bad");
}

// ------------------------------------------------------------------ tabs
for (const tab of document.querySelectorAll(".tab")) {
  tab.addEventListener("click", () => show(tab.dataset.tab));
}
function show(name) {
  for (const tab of document.querySelectorAll(".tab")) tab.classList.toggle("active", tab.dataset.tab === name);
  for (const page of document.querySelectorAll(".page")) page.hidden = page.id !== name;
  if (name === "models") loadModels();
  if (name === "logs") loadLogs();
  if (name === "config") loadConfig();
}
$("logout").addEventListener("click", async () => {
  await api("/logout", {}).catch(() => {});
  window.location.replace("/login");
});

// ------------------------------------------------------------------ Play
async function control(name, value) {
  try {
    const data = await api("/api/control", {name, value});
    say("play-message", `sent ${data.sent}`, true);
  } catch (error) {
    say("play-message", error.message, false);
    const now = lastStatus && lastStatus.settings && lastStatus.settings[name];
    if (now !== undefined && ranges[name]) {          // back to what the box plays
      $(`number-${name}`).value = now;
      $(`slider-${name}`).value = toSlider(ranges[name], now);
    }
  }
}
for (const button of document.querySelectorAll("#modes button")) {
  button.addEventListener("click", () => control("mode", button.dataset.mode));
}
$("pause").addEventListener("click", () => control("pause", true));
$("resume").addEventListener("click", () => control("pause", false));
$("reset").addEventListener("click", () => control("reset", true));

const LABELS = {pi_temperature: "mixture temperature", sigma_temperature: "spread temperature",
                time_scale: "time scale", threshold: "response after (s)"};
function logScale(r) { return r.lo > 0 && r.hi / r.lo > 100; }
function toSlider(r, v) {
  if (!logScale(r)) return (v - r.lo) / (r.hi - r.lo) * 1000;
  return Math.log(v / r.lo) / Math.log(r.hi / r.lo) * 1000;
}
function fromSlider(r, s) {
  const v = logScale(r) ? r.lo * Math.pow(r.hi / r.lo, s / 1000) : r.lo + (r.hi - r.lo) * s / 1000;
  return Number(v.toPrecision(3));
}
function buildSliders() {
  const box = $("sliders");
  box.textContent = "";
  for (const [name, r] of Object.entries(ranges)) {
    const row = document.createElement("div");
    row.className = "slider";
    const label = document.createElement("label");
    label.textContent = LABELS[name] || name;
    label.htmlFor = `slider-${name}`;
    const slider = document.createElement("input");
    Object.assign(slider, {type: "range", min: 0, max: 1000, step: 1, id: `slider-${name}`});
    const number = document.createElement("input");
    Object.assign(number, {type: "number", min: r.lo, max: r.hi, step: "any", id: `number-${name}`});
    slider.addEventListener("input", () => { number.value = fromSlider(r, Number(slider.value)); });
    slider.addEventListener("change", () => control(name, Number(number.value)));
    number.addEventListener("change", () => {
      slider.value = toSlider(r, Number(number.value));
      control(name, Number(number.value));
    });
    row.append(label, slider, number);
    box.append(row);
  }
}

const FIGURES = [
  ["mode", (s) => s.engine.mode], ["performer events", (s) => s.engine.performer_events],
  ["model events", (s) => s.engine.model_events],
  ["prediction", (s) => s.engine.predict_us == null ? "-" : `${Math.round(s.engine.predict_us)} us`],
  ["lost input", (s) => s.engine.lost_inputs], ["model", (s) => (s.model || "none").split("/").pop()],
  ["up", (s) => `${Math.round(s.uptime)} s`], ["last reload", (s) => s.last_reload ? s.last_reload[1] : "-"],
  ["disk left", (s) => s.system.disk_free_mb == null ? "-" : `${(s.system.disk_free_mb / 1e3).toFixed(1)} GB`],
  ["machine up", (s) => s.system.system_uptime == null ? "-" : `${(s.system.system_uptime / 3600).toFixed(1)} h`],
];
const PI_FIGURES = [["CPU", (s) => `${s.system.cpu_celsius.toFixed(1)} °C`, "cpu_celsius"],
                    ["throttled", (s) => /^(0x)?0$/.test(s.system.throttled) ? "no" : s.system.throttled, "throttled"]];
function showStatus(s) {
  lastStatus = s;
  s.system = s.system || {};
  const running = $("running");
  running.textContent = s.running ? "" : `box not running: ${s.why}`;
  running.className = s.running ? "" : "bad";
  if (!s.engine) return;
  $("statusline").textContent = s.line;
  const dl = $("figures");
  dl.textContent = "";
  const shown = FIGURES.concat(PI_FIGURES.filter(([, , key]) => s.system && s.system[key] != null));
  for (const [name, get] of shown) {
    const div = document.createElement("div");
    const dt = document.createElement("dt"); dt.textContent = name;
    const dd = document.createElement("dd"); dd.textContent = String(get(s));
    div.append(dt, dd);
    dl.append(div);
  }
  const mode = s.engine.mode.split(" ")[0];
  for (const button of document.querySelectorAll("#modes button")) {
    button.classList.toggle("on", button.dataset.mode === mode);
  }
  $("pause").classList.toggle("on", s.engine.mode.includes("paused"));
}

function draw() {
  const canvas = $("picture");
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height;
  ctx.fillStyle = "#0c0d10";
  ctx.fillRect(0, 0, w, h);
  ctx.strokeStyle = "#22262d";
  for (let s = 0; s <= WINDOW; s += 5) {
    const x = w - s / WINDOW * w;
    ctx.beginPath(); ctx.moveTo(x, 0); ctx.lineTo(x, h); ctx.stroke();
  }
  const now = Date.now() / 1000;
  while (points.length && points[0][0] < now - WINDOW) points.shift();
  for (const p of points) {
    const x = w - (now - p[0]) / WINDOW * w;
    ctx.fillStyle = p[1] === "p" ? "#4fa3ff" : "#ffa94d";
    for (let i = 2; i < p.length; i++) {
      ctx.globalAlpha = 1 - (i - 2) / (p.length) * 0.6;
      ctx.fillRect(x - 2, (1 - p[i]) * (h - 6) + 1, 4, 4);
    }
  }
  ctx.globalAlpha = 1;
  canvas.dataset.points = String(points.length);       // for the tests: what the picture holds
  if (points.length) canvas.dataset.newest = String(points[points.length - 1][0]);
  requestAnimationFrame(draw);
}

function stream() {
  const events = new EventSource("/api/events");
  events.addEventListener("points", (e) => {
    updates++;
    for (const p of JSON.parse(e.data)) points.push(p);
    $("picture").dataset.updates = String(updates);
  });
  events.addEventListener("status", (e) => showStatus(JSON.parse(e.data)));
  setInterval(() => {
    $("rate").textContent = `${updates} updates`;
  }, 1000);
}

// ------------------------------------------------------------------ Models
function fact(m) {
  const parts = [];
  if (m.dimension) parts.push(`${m.dimension}-D`);
  if (m.units) parts.push(`${m.units} units x ${m.layers}`);
  if (m.mixtures) parts.push(`${m.mixtures} mixtures`);
  if (m.head) parts.push(`head ${m.head}`);
  if (m.validation_loss != null) parts.push(`val loss ${Number(m.validation_loss).toFixed(3)}`);
  if (m.pi_temperature != null) parts.push(`temps ${m.pi_temperature} / ${m.sigma_temperature}`);
  if (m.training_rows) parts.push(`${m.training_rows} rows`);
  if (m.sidecar) parts.push(`sidecar: ${m.sidecar}`);
  parts.push(`${(m.bytes / 1e6).toFixed(2)} MB`);
  return parts.join(" · ");
}
async function loadModels() {
  try {
    const data = await api("/api/models");
    const list = $("model-list");
    list.textContent = "";
    for (const m of data.models) {
      const item = document.createElement("div");
      item.className = "item";
      item.dataset.model = m.name;
      const h = document.createElement("h3");
      h.textContent = m.name;
      if (m.playing) h.insertAdjacentHTML("beforeend", '<span class="tag playing">playing</span>');
      if (m.bundled) h.insertAdjacentHTML("beforeend", '<span class="tag">bundled</span>');
      const facts = document.createElement("p");
      facts.className = "facts";
      facts.textContent = fact(m);
      const row = document.createElement("div");
      row.className = "row";
      const play = document.createElement("button");
      play.textContent = "Play this";
      play.className = "switch";
      play.disabled = m.playing;
      play.addEventListener("click", () => switchModel(m.name));
      const get = document.createElement("a");
      get.textContent = "Download"; get.href = `/api/models/${encodeURIComponent(m.name)}`; get.download = m.name;
      row.append(play, get);
      if (m.deletable) {
        const del = document.createElement("button");
        del.textContent = "Delete";
        del.addEventListener("click", () => deleteModel(m.name));
        row.append(del);
      }
      item.append(h, facts, row);
      if (m.loss_plot) {
        const img = document.createElement("img");
        img.alt = `${m.name}: training loss`; img.loading = "lazy";
        img.src = `/api/models/${encodeURIComponent(m.name)}/loss.png`;
        item.append(img);
      }
      list.append(item);
    }
  } catch (error) { say("models-message", error.message, false); }
}
async function switchModel(name) {
  say("models-message", `checking ${name}...`, true);
  try {
    const data = await api("/api/models/switch", {name});
    const ok = !String(data.reload).startsWith("refused");
    say("models-message", `${name}: ${data.reload}`, ok);
  } catch (error) { say("models-message", error.message, false); }
  loadModels();
}
async function deleteModel(name) {
  if (!confirm(`Delete ${name}?`)) return;
  try { await api("/api/models/delete", {name}); say("models-message", `${name} deleted`, true); }
  catch (error) { say("models-message", error.message, false); }
  loadModels();
}
$("upload").addEventListener("submit", async (event) => {
  event.preventDefault();
  say("models-message", "uploading and checking...", true);
  try {
    const data = await api("/api/models/upload", new FormData(event.target), true);
    say("models-message", `${data.stored}: ${data.check}`, true);
    event.target.reset();
  } catch (error) { say("models-message", error.message, false); }
  loadModels();
});

// ------------------------------------------------------------------ Logs
async function loadLogs() {
  try {
    const data = await api("/api/logs");
    const list = $("log-list");
    list.textContent = "";
    if (!data.logs.length) list.textContent = "no logs yet";
    for (const l of data.logs) {
      const item = document.createElement("div");
      item.className = "item";
      item.dataset.log = l.name;
      const h = document.createElement("h3");
      h.textContent = l.name;
      if (l.writing) h.insertAdjacentHTML("beforeend", '<span class="tag playing">writing</span>');
      const facts = document.createElement("p");
      facts.className = "facts";
      facts.textContent = `${l.start || "empty"} · ${l.seconds == null ? "-" : Math.round(l.seconds) + " s"} · ` +
        `performer ${l.performer_events} · model ${l.model_events} · ${(l.bytes / 1e3).toFixed(1)} kB`;
      const row = document.createElement("div");
      row.className = "row";
      const get = document.createElement("a");
      get.textContent = "Download"; get.href = `/api/logs/${encodeURIComponent(l.name)}`; get.download = l.name;
      row.append(get);
      if (l.deletable) {
        const del = document.createElement("button");
        del.textContent = "Delete";
        del.addEventListener("click", async () => {
          if (!confirm(`Delete ${l.name}?`)) return;
          try { await api("/api/logs/delete", {name: l.name}); say("logs-message", `${l.name} deleted`, true); }
          catch (error) { say("logs-message", error.message, false); }
          loadLogs();
        });
        row.append(del);
      }
      item.append(h, facts, row);
      list.append(item);
    }
  } catch (error) { say("logs-message", error.message, false); }
}

// ------------------------------------------------------------------ Config
async function loadPresets() {
  try {
    const data = await api("/api/presets");
    const list = $("preset-list");
    list.textContent = "";
    for (const name of data.presets) {
      const item = document.createElement("div");
      item.className = "item";
      item.dataset.preset = name;
      const h = document.createElement("h3");
      h.textContent = name;
      const row = document.createElement("div");
      row.className = "row";
      const recall = document.createElement("button");
      recall.textContent = "Recall"; recall.className = "recall";
      recall.addEventListener("click", async () => {
        say("presets-message", `recalling ${name}...`, true);
        try {
          const r = await api("/api/presets/recall", {name});
          say("presets-message", `${name}: ${r.reload}`, !String(r.reload).startsWith("refused"));
          loadConfig();
        } catch (error) { say("presets-message", error.message, false); }
      });
      const del = document.createElement("button");
      del.textContent = "Delete";
      del.addEventListener("click", async () => {
        if (!confirm(`Delete the preset ${name}?`)) return;
        try { await api("/api/presets/delete", {name}); } catch (error) { say("presets-message", error.message, false); }
        loadPresets();
      });
      row.append(recall, del);
      item.append(h, row);
      list.append(item);
    }
  } catch (error) { say("presets-message", error.message, false); }
}
$("preset-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = $("preset-name").value;
  try { await api("/api/presets/save", {name}); say("presets-message", `saved ${name}`, true); }
  catch (error) { say("presets-message", error.message, false); }
  loadPresets();
});

async function loadConfig() {
  loadPresets();
  try {
    const data = await api("/api/config");
    $("config-file").textContent = data.file;
    $("config-text").value = data.text;
  } catch (error) { say("config-message", error.message, false); }
}
$("config-save").addEventListener("click", async () => {
  say("config-message", "checking...", true);
  try {
    const data = await api("/api/config", {text: $("config-text").value});
    const restart = data.restart_needed && data.restart_needed.length ? `; restart to apply ${data.restart_needed.join(", ")}` : "";
    say("config-message", `saved (the previous file kept as .previous); ${data.reload}${restart}`,
        !String(data.reload).startsWith("refused"));
  } catch (error) { say("config-message", error.message, false); }
});

// ------------------------------------------------------------------ start
(async () => {
  const data = await api("/api/state");
  csrf = data.csrf;
  ranges = data.controls;
  buildSliders();
  showStatus(data.status);
  for (const [name, value] of Object.entries(data.status.settings || {})) {   // where the box is now
    if (!ranges[name]) continue;
    $(`number-${name}`).value = value;
    $(`slider-${name}`).value = toSlider(ranges[name], value);
  }
  stream();
  requestAnimationFrame(draw);
})();
