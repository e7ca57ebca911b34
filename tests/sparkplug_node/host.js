// An independent Sparkplug B host application for the edge node's tests: MQTT.js and Eclipse
// Tahu's sparkplug-payload (protobufjs). Usage: node host.js mqtt://127.0.0.1:PORT GROUP
//
// Prints one JSON line per Sparkplug message of the group: {"event": "message", "type":
// "NBIRTH"|..., "node", "device", "seq", "timestamp", "metrics": [{"name", "alias", "type",
// "value", "properties"}]}, and {"event": "subscribed"} once listening. Commands on stdin:
// {"op": "ncmd", "node": N, "metrics": [...]}, {"op": "dcmd", "node": N, "device": D,
// "metrics": [...]} (metrics as sparkplug-payload takes them), {"op": "raw", "topic": T,
// "base64": B}, {"op": "state", "host": H, "online": bool, "timestamp": ms} (a primary host's
// retained STATE); each answered with {"ok": op} once published.
"use strict";

const readline = require("readline");
const mqtt = require("mqtt");
const sparkplug = require("sparkplug-payload").get("spBv1.0");

const [serverUrl, groupId] = process.argv.slice(2);
const TYPES = new Set(["NBIRTH", "NDATA", "NDEATH", "DBIRTH", "DDATA", "DDEATH"]);

function say(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

function plain(value) {
  if (value !== null && typeof value === "object" && typeof value.toNumber === "function") {
    return value.toNumber();
  }
  return value;
}

function properties(props) {
  if (!props) return {};
  const out = {};
  for (const [key, prop] of Object.entries(props)) out[key] = { type: prop.type, value: plain(prop.value) };
  return out;
}

const client = mqtt.connect(serverUrl, { clientId: `test-host-${process.pid}`, clean: true });
client.on("connect", () => {
  client.subscribe(`spBv1.0/${groupId}/#`, { qos: 1 }, (err) =>
    say(err ? { event: "error", message: String(err) } : { event: "subscribed" }),
  );
});
client.on("error", (err) => say({ event: "error", message: String(err) }));
client.on("message", (topic, message) => {
  const [, , type, node, device] = topic.split("/");
  if (!TYPES.has(type)) return;
  let payload;
  try {
    payload = sparkplug.decodePayload(message);
  } catch (err) {
    say({ event: "undecodable", topic, message: String(err) });
    return;
  }
  say({
    event: "message",
    type,
    node,
    device: device || "",
    seq: payload.seq === undefined || payload.seq === null ? null : plain(payload.seq),
    timestamp: plain(payload.timestamp),
    metrics: (payload.metrics || []).map((m) => ({
      name: m.name === undefined ? null : m.name,
      alias: m.alias === undefined || m.alias === null ? null : plain(m.alias),
      type: m.type,
      value: plain(m.value),
      properties: properties(m.properties),
    })),
  });
});

function publish(topic, body, op) {
  client.publish(topic, body, { qos: 0 }, (err) => say(err ? { error: String(err) } : { ok: op }));
}

const lines = readline.createInterface({ input: process.stdin });
lines.on("line", (line) => {
  if (!line.trim()) return;
  const cmd = JSON.parse(line);
  const payload = () => sparkplug.encodePayload({ timestamp: Date.now(), metrics: cmd.metrics || [] });
  switch (cmd.op) {
    case "ncmd":
      publish(`spBv1.0/${groupId}/NCMD/${cmd.node}`, payload(), cmd.op);
      break;
    case "dcmd":
      publish(`spBv1.0/${groupId}/DCMD/${cmd.node}/${cmd.device}`, payload(), cmd.op);
      break;
    case "state":
      // the primary host's STATE (Sparkplug 3.0): retained JSON, QoS 1
      client.publish(
        `spBv1.0/STATE/${cmd.host}`,
        JSON.stringify({ online: cmd.online, timestamp: cmd.timestamp }),
        { qos: 1, retain: true },
        (err) => say(err ? { error: String(err) } : { ok: cmd.op }),
      );
      break;
    case "raw":
      publish(cmd.topic, Buffer.from(cmd.base64, "base64"), cmd.op);
      break;
    default:
      say({ error: `unknown op ${cmd.op}` });
  }
});
lines.on("close", () => client.end(true, () => process.exit(0)));
