// "Run on a processing worker": queue the selected scenarios as jobs (POST /api/jobs) and follow
// each one (GET /api/jobs/{id}) until it is done or failed. Needs [database] url on the server;
// without it the API's 503 says so. Every value from the server is inserted as text.

import { formatNumber } from "./chart.js";

const POLL_MS = 1000;

function row(el, job, scenario) {
  return el(
    "tr",
    { "data-job": String(job.id ?? job.job_id) },
    el("td", {}, String(job.id ?? job.job_id)),
    el("td", {}, scenario),
    el("td", { class: "job-status" }, job.status),
    el("td", { class: "job-result" }, ""),
  );
}

function describe(job) {
  if (job.status === "failed") return job.error || "failed";
  if (job.status !== "done" || !job.result) return `attempt ${job.attempts || 0}`;
  const kpis = job.result.kpis || {};
  const final = kpis.final_temperature;
  return `run ${job.result.simulation_id}` + (typeof final === "number" ? `, final temperature ${formatNumber(final, 4)} °C` : "");
}

async function follow(api, tr, jobId) {
  for (;;) {
    const job = await api(`/api/jobs/${jobId}`);
    tr.querySelector(".job-status").textContent = job.status;
    tr.querySelector(".job-result").textContent = describe(job);
    if (job.status === "done" || job.status === "failed") return job;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

export async function runOnWorker(api, el, names, steps) {
  const message = document.querySelector("#job-message");
  const list = document.querySelector("#job-list");
  if (!names.length) {
    message.textContent = "select at least one scenario";
    return;
  }
  message.textContent = "queueing …";
  try {
    const rows = [];
    for (const scenario of names) {
      const job = await api("/api/jobs", { method: "POST", body: { kind: "scenario.run", payload: { scenario, steps } } });
      const tr = row(el, job, scenario);
      list.prepend(tr);
      rows.push([tr, job.job_id]);
    }
    document.querySelector("#jobs").hidden = false;
    message.textContent = `${rows.length} job(s) queued for the processing workers`;
    const done = await Promise.all(rows.map(([tr, id]) => follow(api, tr, id)));
    const failed = done.filter((j) => j.status === "failed").length;
    message.textContent = failed ? `${failed} job(s) failed` : `${done.length} job(s) done`;
  } catch (err) {
    message.textContent = String(err.message || err);
  }
}
