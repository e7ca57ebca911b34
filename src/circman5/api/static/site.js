// The site page: every line of the site(s) from GET /api/site, refreshed every 2 s.
// Signed in through the HMI (index.html): the same session token.
const TOKEN_KEY = "circman5.token";
const REFRESH_MS = 2000;

const token = sessionStorage.getItem(TOKEN_KEY);
let openLine = null; // [site, line] of the live view, or null

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : String(child ?? ""));
  return node;
}

async function get(path) {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${token}`, Accept: "application/json" } });
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new Error((data && data.detail) || response.statusText);
  return data;
}

function fmt(value) {
  if (typeof value === "number") return Math.abs(value) < 10 ? value.toFixed(3) : value.toFixed(1);
  return value === null || value === undefined ? "–" : String(value);
}

function lineRow(line, keys) {
  const status = el("span", { class: `badge ${line.online ? "online" : "offline"}` }, line.status);
  const alarms = line.alarms.length
    ? el("span", { class: "badge warning", title: line.alarms.map((a) => a.message).join("\n") }, `${line.alarms.length} alarm(s)`)
    : el("span", { class: "muted" }, "none");
  const open = line.dashboard
    ? el("a", { href: line.dashboard, target: "_blank", rel: "noopener", class: "open-dashboard" }, "dashboard")
    : el("a", { href: `#${line.site}/${line.line}`, class: "open-live" }, "live view");
  const row = el(
    "tr",
    { "data-line": `${line.site}/${line.line}`, "data-status": line.status },
    el("td", {}, line.line),
    el("td", {}, status),
    el("td", {}, line.state_time || "–"),
    el("td", { class: "alarms" }, alarms),
  );
  for (const key of keys) row.append(el("td", { class: "value" }, fmt(line.values[key])));
  row.append(el("td", {}, open));
  return row;
}

function render(data) {
  const container = document.getElementById("sites");
  container.replaceChildren();
  const connection = document.getElementById("site-connection");
  connection.textContent = data.connected ? "broker connected" : "broker disconnected";
  connection.className = `badge ${data.connected ? "online" : "offline"}`;
  for (const site of data.sites) {
    const keys = [...new Set(site.lines.flatMap((l) => Object.keys(l.values)))];
    const head = el("tr", {}, ...["line", "status", "last state", "alarms", ...keys, ""].map((h) => el("th", {}, h)));
    const body = el("tbody", {}, ...site.lines.map((line) => lineRow(line, keys)));
    container.append(
      el(
        "section",
        { class: "card", "data-site": site.site },
        el("div", { class: "card-head" }, el("h2", {}, `Site ${site.site}`),
          el("span", { class: "muted" }, `${site.online} online, ${site.offline} offline, ${site.alarms} alarm(s)`)),
        el("table", { class: "site-table" }, el("thead", {}, head), body),
      ),
    );
  }
}

function flatten(prefix, node, rows) {
  for (const [key, value] of Object.entries(node)) {
    const path = prefix ? `${prefix}.${key}` : key;
    if (value && typeof value === "object" && !Array.isArray(value)) flatten(path, value, rows);
    else rows.push([path, value]);
  }
  return rows;
}

async function renderLine() {
  const view = document.getElementById("line-view");
  if (!openLine) {
    view.hidden = true;
    return;
  }
  const [site, line] = openLine;
  const data = await get(`/api/site/${encodeURIComponent(site)}/${encodeURIComponent(line)}/state`);
  document.getElementById("line-view-title").textContent = `Line ${site}/${line}`;
  const body = view.querySelector("tbody");
  body.replaceChildren(...flatten("", data.state, []).map(([p, v]) => el("tr", {}, el("td", {}, p), el("td", { class: "value" }, fmt(v)))));
  view.hidden = false;
}

async function refresh() {
  const error = document.getElementById("site-error");
  try {
    render(await get("/api/site"));
    await renderLine();
    error.textContent = "";
  } catch (err) {
    error.textContent = err.message;
  }
}

function follow() {
  const hash = decodeURIComponent(location.hash.slice(1));
  const parts = hash.split("/");
  openLine = parts.length === 2 && parts[0] && parts[1] ? parts : null;
  renderLine().catch((err) => { document.getElementById("site-error").textContent = err.message; });
}

if (!token) {
  document.getElementById("site-login").hidden = false;
} else {
  document.getElementById("line-view-close").addEventListener("click", (event) => {
    event.preventDefault();
    history.replaceState(null, "", location.pathname);
    follow();
  });
  window.addEventListener("hashchange", follow);
  follow();
  refresh();
  setInterval(refresh, REFRESH_MS);
}
