// CIRCMAN5.0 web HMI: login, live dashboard, alerts, control panel, scenarios, LCA, users.
// Plain ES modules; every value from the server is inserted as text (never as HTML).

import { BarChart, LineChart, formatNumber } from "./chart.js";
import { loadLearning, runCalibration } from "./learning.js";
import { runOnWorker } from "./jobs.js";
import { startForecastOverlay } from "./forecast.js";

const ROLE_LEVEL = { admin: 100, manager: 80, engineer: 60, operator: 40, viewer: 20 };
const TOKEN_KEY = "circman5.token";
const ALERT_SEVERITIES = new Set(["warning", "error", "critical"]);
const TREND_POINTS = 600;

const KPIS = [
  { path: "production_line.temperature", label: "Line temperature", unit: "°C" },
  { path: "production_line.energy_consumption", label: "Energy consumption", unit: "kW" },
  { path: "production_line.production_rate", label: "Production rate", unit: "1/min" },
  { path: "production_line.efficiency", label: "Efficiency", unit: "%", scale: 100 },
  { path: "production_line.defect_rate", label: "Defect rate", unit: "%", scale: 100 },
  { path: "environment.temperature", label: "Ambient temperature", unit: "°C" },
  { path: "environment.humidity", label: "Humidity", unit: "%" },
  { path: "materials.silicon_wafer.inventory", label: "Silicon wafer stock", unit: "kg" },
];

const TRENDS = {
  "production_line.temperature": "chart-temperature",
  "production_line.energy_consumption": "chart-energy",
  "production_line.production_rate": "chart-rate",
  "production_line.efficiency": "chart-efficiency",
};

const SIM_PATHS = [
  "production_line.target_temperature",
  "production_line.temperature",
  "production_line.cycle_time",
  "production_line.energy_consumption",
  "production_line.production_rate",
  "production_line.efficiency",
  "production_line.defect_rate",
  "environment.temperature",
  "environment.humidity",
];

const app = {
  token: null,
  user: null,
  ws: null,
  wsRetry: 0,
  wsTimer: null,
  thresholds: {},
  alerts: new Map(),
  charts: {},
  lastStateAt: 0,
  stateCount: 0,
  setpointPaths: [],
};

// -- helpers ------------------------------------------------------------------------------------
const $ = (sel) => document.querySelector(sel);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function lookup(state, path) {
  let node = state;
  for (const part of path.split(".")) {
    if (node === null || typeof node !== "object" || !(part in node)) return undefined;
    node = node[part];
  }
  return node;
}

function allowed(role) {
  return app.user && ROLE_LEVEL[app.user.role] >= ROLE_LEVEL[role];
}

function show(message, target, ok) {
  const node = typeof target === "string" ? $(target) : target;
  node.textContent = message;
  node.classList.toggle("ok", ok === true);
  node.classList.toggle("bad", ok === false);
}

class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

function describe(detail) {
  if (Array.isArray(detail)) {
    return detail.map((d) => `${(d.loc || []).slice(1).join(".") || "input"}: ${d.msg}`).join("; ");
  }
  return typeof detail === "string" ? detail : JSON.stringify(detail);
}

async function api(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  if (app.token) headers.Authorization = `Bearer ${app.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 204) return null;
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    if (response.status === 401 && path !== "/api/auth/login") logout("Your session ended; please sign in again.");
    throw new ApiError(response.status, describe(data && data.detail ? data.detail : response.statusText));
  }
  return data;
}

// -- session ------------------------------------------------------------------------------------
async function login(event) {
  event.preventDefault();
  const username = $("#login-username").value.trim();
  const password = $("#login-password").value;
  show("", "#login-error");
  $("#login-submit").disabled = true;
  try {
    const data = await api("/api/auth/login", { method: "POST", body: { username, password } });
    sessionStorage.setItem(TOKEN_KEY, data.access_token);
    app.token = data.access_token;
    $("#login-password").value = "";
    await start();
  } catch (err) {
    show(err.status === 429 ? "Too many failed attempts. Wait a minute and try again." : err.message, "#login-error", false);
  } finally {
    $("#login-submit").disabled = false;
  }
}

function logout(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  app.token = null;
  app.user = null;
  if (app.ws) {
    const ws = app.ws;
    app.ws = null;
    ws.close();
  }
  clearTimeout(app.wsTimer);
  $("#tabs").hidden = true;
  $("#session").hidden = true;
  for (const view of document.querySelectorAll(".view")) view.hidden = view.id !== "view-login";
  if (message) show(message, "#login-error", false);
}

async function start() {
  app.user = await api("/api/auth/me");
  $("#whoami").textContent = `${app.user.username} (${app.user.role})`;
  $("#tabs").hidden = false;
  $("#session").hidden = false;
  applyRoles();
  switchView("dashboard");
  buildKpis();
  await Promise.allSettled([loadThresholds(), loadHistory(), loadAlerts(), loadSetpoints()]);
  if (!app.forecastTimer) app.forecastTimer = startForecastOverlay(api, app.charts, Object.keys(TRENDS));
  connectLive();
}

function applyRoles() {
  for (const node of document.querySelectorAll("[data-min-role]")) {
    const ok = allowed(node.dataset.minRole);
    if (node.closest("#tabs")) node.hidden = !ok;
    else {
      node.disabled = !ok;
      node.title = ok ? "" : `requires the ${node.dataset.minRole} role`;
    }
  }
  $("#control-role").textContent = allowed("engineer") ? "" : "read only (engineers and up write setpoints)";
}

function switchView(name) {
  for (const button of document.querySelectorAll("#tabs button")) {
    button.classList.toggle("active", button.dataset.view === name);
  }
  for (const view of document.querySelectorAll(".view")) view.hidden = view.id !== `view-${name}`;
  if (name === "scenarios") loadScenarios();
  if (name === "system") {
    loadSystem();
    loadLearning(api, el).catch(() => {});
  }
  if (name === "users") loadUsers();
  if (name === "lca") loadLcaReport();
  for (const chart of Object.values(app.charts)) chart.schedule && chart.schedule();
}

// -- dashboard ----------------------------------------------------------------------------------
function kpiId(path) {
  return `kpi-${path.replaceAll(".", "-")}`;
}

function buildKpis() {
  const box = $("#kpis");
  box.replaceChildren(
    ...KPIS.map((k) =>
      el(
        "div",
        { class: "kpi", id: kpiId(k.path), dataset: { path: k.path } },
        el("div", { class: "label" }, k.label),
        el("div", {}, el("span", { class: "value" }, "–"), el("span", { class: "unit" }, k.unit)),
        el("div", { class: "range" }, ""),
      ),
    ),
  );
  for (const [path, id] of Object.entries(TRENDS)) {
    if (!app.charts[path]) app.charts[path] = new LineChart($(`#${id}`), { maxPoints: TREND_POINTS });
  }
}

async function loadThresholds() {
  const rules = await api("/api/thresholds");
  app.thresholds = Object.fromEntries(rules.map((r) => [r.path, r]));
  for (const k of KPIS) {
    const rule = app.thresholds[k.path];
    const node = document.getElementById(kpiId(k.path));
    if (rule && node) {
      const scale = k.scale || 1;
      const lo = rule.low === null ? "" : formatNumber(rule.low * scale);
      const hi = rule.high === null ? "" : formatNumber(rule.high * scale);
      node.querySelector(".range").textContent = `limits ${lo} … ${hi}`;
    }
    const chart = app.charts[k.path];
    if (chart && rule) chart.setLimits(rule.low, rule.high);
  }
}

async function loadHistory() {
  const [history, current] = await Promise.all([api("/api/state/history?limit=300"), api("/api/state")]);
  const states = [...history.states, current];
  for (const [path, chart] of Object.entries(app.charts)) {
    if (!(path in TRENDS)) continue;
    const points = [];
    for (const s of states) {
      const v = lookup(s, path);
      const t = Date.parse(s.timestamp);
      if (typeof v === "number" && Number.isFinite(t)) points.push([t, v]);
    }
    chart.setSeries("value", points);
  }
  renderState(current, {});
}

function renderState(state, alarms) {
  const status = state.system_status || "unknown";
  const badge = $("#system-status");
  badge.textContent = status;
  badge.className = `badge ${status === "running" ? "running" : "warning"}`;
  for (const k of KPIS) {
    const node = document.getElementById(kpiId(k.path));
    if (!node) continue;
    const v = lookup(state, k.path);
    node.querySelector(".value").textContent = typeof v === "number" ? formatNumber(v * (k.scale || 1), 4) : "–";
    node.classList.toggle("alarm", Boolean(alarms && alarms[k.path]));
  }
  const t = Date.parse(state.timestamp) || Date.now();
  for (const path of Object.keys(TRENDS)) {
    const v = lookup(state, path);
    if (app.charts[path]) app.charts[path].push("value", t, v);
  }
  for (const path of app.setpointPaths) {
    const cell = document.querySelector(`tr[data-path="${CSS.escape(path)}"] .sp-current`);
    const v = lookup(state, path);
    if (cell) cell.textContent = v === undefined ? "–" : typeof v === "number" ? formatNumber(v, 4) : String(v);
  }
  app.lastStateAt = Date.now();
  document.body.dataset.states = String(++app.stateCount); // how many states were shown
  $("#trend-info").textContent = `updated ${new Date(t).toLocaleTimeString()}`;
}

// -- alerts -------------------------------------------------------------------------------------
async function loadAlerts() {
  const alerts = await api("/api/events/alerts?acknowledged=false&limit=100");
  app.alerts.clear();
  for (const a of alerts.reverse()) app.alerts.set(a.event_id, a);
  renderAlerts();
}

function addAlert(event) {
  if (!ALERT_SEVERITIES.has(event.severity) || event.acknowledged || event.category === "user") return;
  app.alerts.set(event.event_id, event);
  while (app.alerts.size > 200) app.alerts.delete(app.alerts.keys().next().value);
  renderAlerts();
}

function renderAlerts() {
  const list = $("#alerts");
  const items = [...app.alerts.values()].reverse();
  const canAck = allowed("operator");
  list.replaceChildren(
    ...items.map((a) =>
      el(
        "li",
        { dataset: { eventId: a.event_id } },
        el("span", { class: `badge ${a.severity}` }, a.severity),
        el(
          "div",
          {},
          el("div", { class: "msg" }, a.message),
          el("div", { class: "time" }, new Date(a.timestamp).toLocaleString()),
        ),
        el(
          "button",
          {
            class: "small ack",
            disabled: !canAck,
            title: canAck ? "acknowledge" : "requires the operator role",
            onclick: () => acknowledge(a.event_id),
          },
          "Acknowledge",
        ),
      ),
    ),
  );
  $("#alert-count").textContent = String(items.length);
  $("#alert-count").className = `badge ${items.length ? "warning" : ""}`;
  $("#alerts-empty").hidden = items.length > 0;
}

async function acknowledge(eventId) {
  try {
    await api(`/api/events/${encodeURIComponent(eventId)}/acknowledge`, { method: "POST" });
    app.alerts.delete(eventId);
    renderAlerts();
  } catch (err) {
    alert(`Could not acknowledge: ${err.message}`);
  }
}

// -- control panel ------------------------------------------------------------------------------
async function loadSetpoints() {
  const setpoints = await api("/api/setpoints");
  app.setpointPaths = setpoints.map((s) => s.path);
  const canWrite = allowed("engineer");
  $("#setpoints-empty").hidden = setpoints.length > 0;
  $("#setpoints").replaceChildren(
    ...setpoints.map((s) => {
      const input = el("input", {
        class: "sp-input",
        type: s.kind === "bool" ? "checkbox" : "number",
        step: s.kind === "int" ? "1" : "any",
        min: s.min ?? undefined,
        max: s.max ?? undefined,
        disabled: !canWrite,
        "aria-label": `new value for ${s.path}`,
      });
      if (s.kind !== "bool" && typeof s.value === "number") input.value = String(s.value);
      if (s.kind === "bool") input.checked = Boolean(s.value);
      const button = el(
        "button",
        {
          class: "small sp-write",
          disabled: !canWrite,
          title: canWrite ? "write to the device" : "requires the engineer role",
          onclick: () => writeSetpoint(s, input, button),
        },
        "Write",
      );
      const unit = s.unit ? ` ${s.unit}` : "";
      const range = s.kind === "bool" ? "on/off" : `range ${formatNumber(s.min)} … ${formatNumber(s.max)}${unit}`;
      return el(
        "tr",
        { dataset: { path: s.path } },
        el(
          "td",
          {},
          el("div", {}, s.description || s.path),
          el("div", { class: "path" }, s.path),
          el("div", { class: "range" }, range),
        ),
        el("td", { class: "num sp-current" }, s.value === null || s.value === undefined ? "–" : formatNumber(s.value, 4)),
        el("td", {}, input),
        el("td", {}, button),
      );
    }),
  );
}

async function writeSetpoint(setpoint, input, button) {
  let value;
  if (setpoint.kind === "bool") value = input.checked;
  else {
    value = Number(input.value);
    if (input.value.trim() === "" || !Number.isFinite(value)) {
      show(`${setpoint.path}: enter a number`, "#setpoint-result", false);
      return;
    }
    if (setpoint.kind === "int") value = Math.round(value);
  }
  button.disabled = true;
  show(`writing ${setpoint.path} = ${value} …`, "#setpoint-result");
  try {
    const result = await api("/api/setpoints", { method: "POST", body: { path: setpoint.path, value } });
    show(
      `${result.path} = ${formatNumber(result.readback ?? result.value, 6)} written and confirmed (${result.confirmed_by}); was ${formatNumber(result.old_value, 6)}`,
      "#setpoint-result",
      true,
    );
  } catch (err) {
    show(err.message, "#setpoint-result", false);
  } finally {
    button.disabled = !allowed("engineer");
  }
}

// -- live connection ----------------------------------------------------------------------------
function connectLive() {
  if (!app.token) return;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/api/ws`);
  app.ws = ws;
  ws.addEventListener("open", () => ws.send(JSON.stringify({ type: "auth", token: app.token })));
  ws.addEventListener("message", (message) => {
    let data;
    try {
      data = JSON.parse(message.data);
    } catch {
      return;
    }
    if (data.type === "hello") {
      app.wsRetry = 0;
      setLive(true);
    } else if (data.type === "state") renderState(data.state, data.alarms);
    else if (data.type === "event") addAlert(data.event);
  });
  ws.addEventListener("close", (event) => {
    if (app.ws !== ws) return;
    app.ws = null;
    setLive(false);
    if (event.code === 1008) {
      logout("Your session ended; please sign in again.");
      return;
    }
    const delay = Math.min(10000, 500 * 2 ** app.wsRetry++);
    app.wsTimer = setTimeout(connectLive, delay);
  });
}

function setLive(online) {
  const badge = $("#live-status");
  badge.textContent = online ? "live" : "offline";
  badge.className = `badge ${online ? "online" : "offline"}`;
}

// -- scenarios ----------------------------------------------------------------------------------
function addParamRow(path = SIM_PATHS[0], value = "") {
  const select = el("select", { class: "param-path" }, ...SIM_PATHS.map((p) => el("option", { value: p, selected: p === path }, p)));
  const input = el("input", { class: "param-value", type: "number", step: "any", value, required: true });
  const row = el("div", { class: "param-row" }, select, input, el("button", { type: "button", class: "link", onclick: () => row.remove() }, "✕"));
  $("#scenario-params").append(row);
}

async function loadScenarios() {
  try {
    const scenarios = await api("/api/scenarios");
    $("#scenario-list").replaceChildren(
      ...scenarios.map((s) =>
        el(
          "tr",
          {},
          el("td", {}, el("input", { type: "checkbox", class: "scenario-pick", value: s.name, checked: true })),
          el("td", {}, s.name),
          el("td", {}, el("code", {}, Object.entries(s.parameters).map(([k, v]) => `${k}=${v}`).join(", ") || "(current state)")),
          el("td", {}, s.description),
        ),
      ),
    );
  } catch (err) {
    show(err.message, "#compare-message", false);
  }
}

async function createScenario(event) {
  event.preventDefault();
  const parameters = {};
  for (const row of document.querySelectorAll("#scenario-params .param-row")) {
    const value = Number(row.querySelector(".param-value").value);
    if (!Number.isFinite(value)) continue;
    parameters[row.querySelector(".param-path").value] = value;
  }
  try {
    await api("/api/scenarios", {
      method: "POST",
      body: { name: $("#scenario-name").value.trim(), description: $("#scenario-description").value, parameters },
    });
    show("scenario created", "#scenario-message", true);
    $("#scenario-name").value = "";
    await loadScenarios();
  } catch (err) {
    show(err.message, "#scenario-message", false);
  }
}

const COMPARE_KPIS = [
  ["total_energy", "Total energy"],
  ["total_output", "Total output"],
  ["good_output", "Good output"],
  ["mean_defect_rate", "Mean defect rate"],
  ["final_efficiency", "Final efficiency"],
  ["final_temperature", "Final temperature"],
];

async function compareScenarios() {
  const names = [...document.querySelectorAll(".scenario-pick:checked")].map((c) => c.value);
  if (!names.length) {
    show("select at least one scenario", "#compare-message", false);
    return;
  }
  show("running …", "#compare-message");
  try {
    const steps = Number($("#compare-steps").value) || 60;
    const result = await api("/api/scenarios/compare", { method: "POST", body: { scenarios: names, steps } });
    show(`compared ${names.length} scenario(s) over ${result.steps} steps, same start and noise`, "#compare-message", true);
    $("#comparison").hidden = false;
    if (!app.charts.compareTemperature) {
      app.charts.compareTemperature = new LineChart($("#chart-compare-temperature"), { xIsTime: false });
      app.charts.compareKpis = new BarChart($("#chart-compare-kpis"));
    }
    const chart = app.charts.compareTemperature;
    chart.clear();
    const rule = app.thresholds["production_line.temperature"];
    if (rule) chart.setLimits(rule.low, rule.high);
    for (const name of result.scenarios) {
      const series = result.series[name].temperature;
      chart.setSeries(name, series.map((v, i) => [i, v]).filter(([, v]) => typeof v === "number"));
    }
    app.charts.compareKpis.set(
      COMPARE_KPIS.map(([, label]) => label),
      result.scenarios.map((name) => ({ name, values: COMPARE_KPIS.map(([key]) => result.kpis[name][key]) })),
    );
    const table = $("#compare-table");
    table.replaceChildren(
      el("thead", {}, el("tr", {}, el("th", {}, "KPI"), ...result.scenarios.map((n) => el("th", {}, n)))),
      el(
        "tbody",
        {},
        ...result.table.map((row) =>
          el("tr", {}, el("td", {}, row.kpi), ...result.scenarios.map((n) => el("td", { class: "num" }, formatNumber(row[n], 5)))),
        ),
      ),
    );
  } catch (err) {
    show(err.message, "#compare-message", false);
  }
}

async function runMonteCarlo() {
  show("running …", "#mc-message");
  try {
    const body = {
      steps: Number($("#mc-steps").value),
      iterations: Number($("#mc-iterations").value),
      uncertainty: Number($("#mc-uncertainty").value),
    };
    const summary = await api("/api/simulate/monte-carlo", { method: "POST", body });
    const series = summary.paths["production_line.temperature"];
    if (!app.charts.mc) app.charts.mc = new LineChart($("#chart-mc"), { xIsTime: false });
    const chart = app.charts.mc;
    chart.clear();
    const rule = app.thresholds["production_line.temperature"];
    if (rule) chart.setLimits(rule.low, rule.high);
    const pts = (arr) => arr.map((v, i) => [i, v]).filter(([, v]) => typeof v === "number");
    chart.setBand(pts(series.p5), pts(series.p95));
    chart.setSeries("mean", pts(series.mean));
    const breach = summary.breach["production_line.temperature"];
    const p = breach ? ` · breach probability ${(breach.probability * 100).toFixed(1)} %` : "";
    show(`${summary.iterations} runs × ${summary.steps} steps${p}`, "#mc-message", true);
  } catch (err) {
    show(err.message, "#mc-message", false);
  }
}

// -- LCA ----------------------------------------------------------------------------------------
function numericEntries(obj, prefix = "", out = []) {
  for (const [key, value] of Object.entries(obj || {})) {
    if (typeof value === "number" && Number.isFinite(value)) out.push([prefix + key, value]);
    else if (value && typeof value === "object" && !Array.isArray(value) && prefix === "") numericEntries(value, `${key}.`, out);
  }
  return out;
}

async function runLca() {
  show("analysing …", "#lca-message");
  try {
    const batch = $("#lca-batch").value.trim();
    const result = await api("/api/lca/analysis", { method: "POST", body: batch ? { batch_id: batch } : {} });
    const entries = numericEntries(result).slice(0, 12);
    if (!app.charts.lca) app.charts.lca = new BarChart($("#chart-lca"));
    app.charts.lca.set(entries.map(([k]) => k.replaceAll("_", " ")), [{ name: "impact", values: entries.map(([, v]) => v) }]);
    $("#lca-table").replaceChildren(
      ...entries.map(([k, v]) => el("tr", {}, el("td", {}, k), el("td", { class: "num" }, formatNumber(v, 6)))),
    );
    show("analysis complete", "#lca-message", true);
    loadLcaReport();
  } catch (err) {
    show(err.message, "#lca-message", false);
  }
}

const LCA_IMPACTS = [
  ["manufacturing_impact", "Manufacturing"],
  ["use_phase_impact", "Use phase"],
  ["end_of_life_impact", "End of life"],
  ["recycling_benefit", "Recycling benefit"],
  ["total_carbon_footprint", "Total footprint"],
  ["net_carbon_footprint", "Net footprint"],
];

function renderLcaReport(report) {
  const batches = (report.batch_ids || []).map((id, i) => id || `analysis ${i + 1}`);
  $("#lca-report-summary").textContent = report.num_results
    ? `${report.num_results} of ${report.total_analyses} analyses, generated ${new Date(report.generated_at).toLocaleString()}` +
      (report.unknown_materials.length ? `; materials without impact factors: ${report.unknown_materials.join(", ")}` : "")
    : "No analyses yet: run one above.";
  const head = el("tr", {}, el("th", {}, "Impact (kg CO\u2082-eq)"), el("th", { class: "num" }, "Average"),
    ...batches.map((b) => el("th", { class: "num" }, b)));
  const rows = LCA_IMPACTS.map(([key, label]) => el("tr", {},
    el("td", {}, label),
    el("td", { class: "num" }, formatNumber(report.average_impacts?.[key] ?? 0, 4)),
    ...(report.impact_trends?.[key] || []).map((v) => el("td", { class: "num" }, formatNumber(v, 4)))));
  $("#lca-report-body").replaceChildren(head, ...rows);
  if (!app.charts.lcaReport) app.charts.lcaReport = new BarChart($("#chart-lca-report"));
  app.charts.lcaReport.set(batches, [
    { name: "total", values: report.impact_trends?.total_carbon_footprint || [] },
    { name: "net", values: report.impact_trends?.net_carbon_footprint || [] },
  ]);
}

async function loadLcaReport() {
  try {
    renderLcaReport(await api("/api/lca/report"));
  } catch (err) {
    $("#lca-report-summary").textContent = err.message;
  }
}

// -- system -------------------------------------------------------------------------------------
async function loadSystem() {
  try {
    const connectors = await api("/api/connectors");
    $("#connectors").replaceChildren(
      el(
        "tr",
        {},
        ...["Name", "Protocol", "Connected", "Samples", "Writes", "Last error"].map((h) =>
          el("th", { class: h === "Samples" || h === "Writes" ? "num" : undefined }, h),
        ),
      ),
      ...connectors.map((c) =>
        el(
          "tr",
          {},
          el("td", {}, c.name),
          el("td", {}, c.protocol),
          el("td", {}, el("span", { class: `badge ${c.connected ? "running" : "error"}` }, c.connected ? "yes" : "no")),
          el("td", { class: "num" }, c.samples_in ?? "–"),
          el("td", { class: "num" }, c.writes ?? "–"),
          el("td", {}, c.last_error || ""),
        ),
      ),
    );
    const events = await api("/api/events?limit=50");
    $("#events").replaceChildren(
      ...events.map((e) =>
        el(
          "tr",
          {},
          el("td", {}, new Date(e.timestamp).toLocaleTimeString()),
          el("td", {}, el("span", { class: `badge ${e.severity}` }, e.severity)),
          el("td", {}, e.category),
          el("td", {}, e.message),
        ),
      ),
    );
  } catch (err) {
    $("#events").replaceChildren(el("tr", {}, el("td", {}, err.message)));
  }
}

async function runDiagnostics() {
  try {
    const result = await api("/api/diagnostics");
    $("#diagnostics").replaceChildren(
      ...Object.entries(result.components).map(([name, c]) =>
        el("li", {}, el("span", {}, name.replaceAll("_", " ")), el("span", { class: `badge ${c.status === "ok" ? "running" : c.status}` }, c.status)),
      ),
    );
  } catch (err) {
    $("#diagnostics").replaceChildren(el("li", {}, err.message));
  }
}

// -- users --------------------------------------------------------------------------------------
async function loadUsers() {
  try {
    const users = await api("/api/users");
    $("#users").replaceChildren(
      ...users.map((u) => {
        const role = el("select", {}, ...Object.keys(ROLE_LEVEL).map((r) => el("option", { value: r, selected: r === u.role }, r)));
        role.addEventListener("change", async () => {
          try {
            await api(`/api/users/${encodeURIComponent(u.username)}`, { method: "PATCH", body: { role: role.value } });
            show(`${u.username} is now ${role.value}`, "#user-message", true);
          } catch (err) {
            show(err.message, "#user-message", false);
            role.value = u.role;
          }
        });
        const remove = el(
          "button",
          {
            class: "small danger",
            onclick: async () => {
              if (!confirm(`Delete user ${u.username}?`)) return;
              try {
                await api(`/api/users/${encodeURIComponent(u.username)}`, { method: "DELETE" });
                loadUsers();
              } catch (err) {
                show(err.message, "#user-message", false);
              }
            },
          },
          "Delete",
        );
        return el("tr", {}, el("td", {}, u.username), el("td", {}, role), el("td", {}, new Date(u.created_at).toLocaleString()), el("td", {}, remove));
      }),
    );
  } catch (err) {
    show(err.message, "#user-message", false);
  }
}

async function addUser(event) {
  event.preventDefault();
  try {
    await api("/api/users", {
      method: "POST",
      body: { username: $("#user-name").value.trim(), password: $("#user-password").value, role: $("#user-role").value },
    });
    show("user added", "#user-message", true);
    $("#user-form").reset();
    loadUsers();
  } catch (err) {
    show(err.message, "#user-message", false);
  }
}

// -- wiring -------------------------------------------------------------------------------------
function init() {
  $("#login-form").addEventListener("submit", login);
  $("#logout").addEventListener("click", () => logout());
  for (const button of document.querySelectorAll("#tabs button")) {
    button.addEventListener("click", () => switchView(button.dataset.view));
  }
  $("#scenario-form").addEventListener("submit", createScenario);
  $("#scenario-add-param").addEventListener("click", () => addParamRow());
  addParamRow("production_line.target_temperature", "24");
  $("#compare-run").addEventListener("click", compareScenarios);
  $("#job-run").addEventListener("click", () =>
    runOnWorker(api, el, [...document.querySelectorAll(".scenario-pick:checked")].map((c) => c.value), Number($("#compare-steps").value) || 60),
  );
  $("#mc-run").addEventListener("click", runMonteCarlo);
  $("#lca-run").addEventListener("click", runLca);
  $("#lca-report").addEventListener("click", loadLcaReport);
  $("#connectors-refresh").addEventListener("click", loadSystem);
  $("#diagnostics-run").addEventListener("click", runDiagnostics);
  $("#calibration-run").addEventListener("click", () => runCalibration(api, el, $("#calibration-source").value));
  $("#user-form").addEventListener("submit", addUser);
  $("#user-role").replaceChildren(...Object.keys(ROLE_LEVEL).map((r) => el("option", { value: r, selected: r === "viewer" }, r)));
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) {
    app.token = saved;
    start().catch(() => logout());
  } else {
    logout();
  }
}

init();
