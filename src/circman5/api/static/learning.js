// The "Learning the line" panel: calibration status per path and the model's provenance.
// Every value from the server is inserted as text (never as HTML).

import { formatNumber } from "./chart.js";

function cell(el, value, digits = 3) {
  if (value === null || value === undefined) return el("td", {}, "–");
  return el("td", {}, typeof value === "number" ? formatNumber(value, digits) : String(value));
}

export function renderCalibration(el, target, data) {
  const info = target.querySelector("#calibration-info");
  const rows = target.querySelector("#calibration-paths");
  if (!data.active) {
    info.textContent = "No calibration: simulations use the built-in defaults.";
    rows.replaceChildren();
    return;
  }
  const c = data.active;
  info.textContent =
    `${data.parameter_set} from ${c.source}, ${c.window.start || "–"} .. ${c.window.end || "–"}` +
    ` (accept R² ≥ ${c.min_r2})`;
  rows.replaceChildren(
    ...c.paths.map((p) =>
      el(
        "tr",
        { class: p.status === "accepted" ? "ok" : "muted" },
        el("td", {}, p.path),
        el("td", { class: "calibration-status", title: p.reason || "" }, p.status),
        cell(el, p.r2),
        cell(el, p.rmse),
        el("td", {}, p.start ? `${p.start} .. ${p.end} (${p.points})` : "–"),
      ),
    ),
  );
}

export function renderProvenance(el, target, info) {
  const p = info.provenance || {};
  const box = target.querySelector("#model-provenance");
  const window = p.window ? `${p.window.start} .. ${p.window.end}` : "–";
  const errors = Object.entries(p.cv_rmse || {}).map(([t, v]) => `${t} ${formatNumber(v, 3)}`);
  const items = [
    ["Trained on", p.source === "line data" ? "the line's recorded data" : `${p.source} data`],
    ["Window", window],
    ["Batches", p.batches ?? "–"],
    ["Rows", p.rows ?? "–"],
    ["CV error (RMSE)", errors.join(", ") || "–"],
    ["Trained at", p.trained_at || "–"],
  ];
  if (p.fallback_reason) items.push(["Why synthetic", p.fallback_reason]);
  box.replaceChildren(
    ...items.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, String(v)))),
  );
  const badge = target.querySelector("#model-source");
  badge.textContent = p.source === "line data" ? "line data" : "synthetic";
  badge.classList.toggle("warning", p.source !== "line data");
}

export async function loadLearning(api, el) {
  const target = document.querySelector("#learning");
  if (!target) return;
  // Each part is shown as soon as it arrives: the model's info may first train the model
  // (seconds), the calibration is a read.
  const ignore = () => {};
  await Promise.allSettled([
    api("/api/calibration").then((data) => renderCalibration(el, target, data), ignore),
    api("/api/model/info").then((info) => renderProvenance(el, target, info), ignore),
  ]);
}

export async function runCalibration(api, el, source) {
  const target = document.querySelector("#learning");
  const message = target.querySelector("#calibration-message");
  message.textContent = "calibrating…";
  try {
    const result = await api("/api/calibration", { method: "POST", body: { source } });
    message.textContent = `saved as calibration ${result.version}: ${result.accepted_paths.length} path(s) explained`;
    await loadLearning(api, el);
  } catch (err) {
    message.textContent = String(err.message || err);
  }
}
