// A many-tag OPC UA server from another stack (node-opcua), for the OPC UA worker benchmark.
//
//   node load_server.mjs '{"port": 4840, "tags": 10000, "rate_hz": 5}'
//
// No security, anonymous sessions. Variables nsu=urn:circman5:bench:load;s=Load.TagNNNNN in
// folders Load/GroupNNN (100 per group); every value changes rate_hz times a second (one timer
// sets them all; a monitored item with sampling interval 0 gets each change, no sampling timer).
// Prints "READY <port>" once listening and stops on SIGTERM.

import { OPCUAServer, Subscription } from "node-opcua-server";
import { DataType } from "node-opcua-variant";

const options = JSON.parse(process.argv[2] || "{}");
const tags = options.tags ?? 10000;
const periodMs = 1000 / (options.rate_hz ?? 5);

// node-opcua caps a publish response at 1,000 notifications whatever the client asks; lifted,
// so the client's own pace (how fast it decodes and asks again) sets the figure.
Subscription.maxNotificationPerPublishHighLimit = 100000;

const server = new OPCUAServer({
  port: options.port,
  hostname: "localhost",
  allowAnonymous: true,
  maxConnectionsPerEndpoint: 100,
  serverCapabilities: {
    maxSessions: 100,
    operationLimits: { maxMonitoredItemsPerCall: 100000, maxNodesPerBrowse: 100000 },
  },
  serverInfo: {
    applicationUri: "urn:circman5:bench:node-opcua-load",
    productUri: "urn:circman5:bench:node-opcua-load",
  },
});
await server.initialize();

const addressSpace = server.engine.addressSpace;
const namespace = addressSpace.registerNamespace("urn:circman5:bench:load");
const load = namespace.addFolder(addressSpace.rootFolder.objects, {
  nodeId: "s=Load",
  browseName: "Load",
});
let group = null;
const variables = [];
for (let i = 0; i < tags; i++) {
  if (i % 100 === 0) {
    const name = `Group${String(i / 100).padStart(3, "0")}`;
    group = namespace.addFolder(load, { nodeId: `s=Load.${name}`, browseName: name });
  }
  const name = `Tag${String(i).padStart(5, "0")}`;
  variables.push(
    namespace.addVariable({
      componentOf: group,
      nodeId: `s=Load.${name}`,
      browseName: name,
      dataType: "Double",
      minimumSamplingInterval: 0, // sampling interval 0: delivered on change, no sampling timer
      value: { dataType: DataType.Double, value: i },
    }),
  );
}
let tick = 0;
setInterval(() => {
  tick += 1;
  for (let i = 0; i < variables.length; i++) {
    // status Good, source timestamp now
    variables[i].setValueFromSource({ dataType: DataType.Double, value: tick * tags + i });
  }
}, periodMs);

await server.start();
process.stdout.write(`READY ${server.endpoints[0].port}\n`);

process.on("SIGTERM", async () => {
  await server.shutdown(0);
  process.exit(0);
});
