// An independent Sparkplug B edge node for the host connector's tests: Eclipse Tahu's
// sparkplug-client (MQTT.js + protobufjs), driven by JSON lines on stdin, one reply per line on
// stdout. Usage: node edge_node.js mqtt://127.0.0.1:PORT GROUP EDGE_NODE
//
// Commands: {"op": "nbirth"|"ndata", "metrics": [...]} (births may be "silent": kept for a
// rebirth but not published), {"op": "dbirth"|"ddata", "device": D,
// "metrics": [...]}, {"op": "ddeath", "device": D}, {"op": "skip_seq", "count": N},
// {"op": "stop"} (clean stop: NDEATH). Metrics: {"name", "alias", "type", "value",
// "timestamp", "properties"} as sparkplug-payload takes them. Replies: {"ok": op} per command,
// {"event": "connected"}, {"event": "ncmd", "metrics": [...]} for every NCMD received (after
// which a "Node Control/Rebirth" = true republishes the last NBIRTH and DBIRTHs), and
// {"event": "rebirth"} once done.
"use strict";

const readline = require("readline");
const sparkplug = require("sparkplug-client");

const [serverUrl, groupId, edgeNode] = process.argv.slice(2);
const client = sparkplug.newClient({
  serverUrl,
  groupId,
  edgeNode,
  clientId: `test-edge-${edgeNode}-${process.pid}`,
  username: "",
  password: "",
  version: "spBv1.0",
  publishDeath: true,
});

let nodeBirth = null;
const deviceBirths = new Map();

function say(obj) {
  process.stdout.write(JSON.stringify(obj, (k, v) => (typeof v === "bigint" ? Number(v) : v)) + "\n");
}

function plain(metrics) {
  return (metrics || []).map((m) => ({
    name: m.name,
    type: m.type,
    value: m.value && typeof m.value.toNumber === "function" ? m.value.toNumber() : m.value,
  }));
}

client.on("connect", () => say({ event: "connected" }));
client.on("error", (err) => say({ event: "error", message: String(err) }));
client.on("ncmd", (payload) => {
  say({ event: "ncmd", metrics: plain(payload.metrics) });
  const rebirth = (payload.metrics || []).some(
    (m) => m.name === "Node Control/Rebirth" && m.value === true,
  );
  if (rebirth && nodeBirth !== null) {
    client.publishNodeBirth(JSON.parse(JSON.stringify(nodeBirth)));
    for (const [device, birth] of deviceBirths) {
      client.publishDeviceBirth(device, JSON.parse(JSON.stringify(birth)));
    }
    say({ event: "rebirth" });
  }
});

function payloadOf(cmd) {
  return { timestamp: Date.now(), metrics: cmd.metrics || [] };
}

const lines = readline.createInterface({ input: process.stdin });
lines.on("line", (line) => {
  if (!line.trim()) return;
  const cmd = JSON.parse(line);
  switch (cmd.op) {
    case "nbirth":
      // "silent": keep the birth for a rebirth request without publishing it now.
      nodeBirth = payloadOf(cmd);
      if (!cmd.silent) client.publishNodeBirth(JSON.parse(JSON.stringify(nodeBirth)));
      break;
    case "ndata":
      client.publishNodeData(payloadOf(cmd));
      break;
    case "dbirth":
      deviceBirths.set(cmd.device, payloadOf(cmd));
      if (!cmd.silent) client.publishDeviceBirth(cmd.device, payloadOf(cmd));
      break;
    case "ddata":
      client.publishDeviceData(cmd.device, payloadOf(cmd));
      break;
    case "ddeath":
      deviceBirths.delete(cmd.device);
      client.publishDeviceDeath(cmd.device, { timestamp: Date.now(), metrics: [] });
      break;
    case "skip_seq":
      // The client's own counter (0..255): skipping numbers makes a sequence gap.
      for (let i = 0; i < (cmd.count || 1); i++) client.incrementSeqNum();
      break;
    case "stop":
      client.stop();
      say({ ok: cmd.op });
      setTimeout(() => process.exit(0), 200);
      return;
    default:
      say({ error: `unknown op ${cmd.op}` });
      return;
  }
  say({ ok: cmd.op });
});
lines.on("close", () => process.exit(0));
