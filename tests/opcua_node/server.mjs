// A secure OPC UA server from another stack (node-opcua), for the connector's security tests.
//
//   node server.mjs '{"port": 4840, "pki": "/tmp/pki", "user": "operator", "password": "pw"}'
//
// Basic256Sha256 with SignAndEncrypt only, no anonymous login, one user. Client certificates are
// checked against the PKI directory: an unknown one lands in <pki>/rejected until it is moved
// to <pki>/trusted/certs (node-opcua's certificate manager, as in a real node-opcua server).
// A client certificate can also be trusted with "trust <file>" on stdin. One variable nsu=urn:circman5:test:line;s=Line1.Temperature changes every 100 ms. Prints "READY <port>" once
// listening and stops on SIGTERM.

import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";

import { OPCUAServer } from "node-opcua-server";
import { DataType, Variant } from "node-opcua-variant";
import { OPCUACertificateManager } from "node-opcua-certificate-manager";

const SIGN_AND_ENCRYPT = 3; // MessageSecurityMode.SignAndEncrypt
const BASIC256SHA256 = "http://opcfoundation.org/UA/SecurityPolicy#Basic256Sha256";

const options = JSON.parse(process.argv[2] || "{}");

const serverCertificateManager = new OPCUACertificateManager({
  rootFolder: options.pki,
  automaticallyAcceptUnknownCertificate: false,
});
await serverCertificateManager.initialize();

const server = new OPCUAServer({
  port: options.port,
  hostname: "localhost",
  securityModes: [SIGN_AND_ENCRYPT],
  securityPolicies: [BASIC256SHA256],
  allowAnonymous: false,
  serverCertificateManager,
  serverInfo: {
    applicationUri: options.applicationUri || "urn:circman5:test:node-opcua",
    productUri: "urn:circman5:test:node-opcua",
  },
  userManager: {
    isValidUser: (user, password) => user === options.user && password === options.password,
  },
});
await server.initialize();

const namespace = server.engine.addressSpace.registerNamespace("urn:circman5:test:line");
const line = namespace.addObject({
  organizedBy: server.engine.addressSpace.rootFolder.objects,
  browseName: "Line1",
});
let temperature = 22.0;
namespace.addVariable({
  componentOf: line,
  nodeId: "s=Line1.Temperature",
  browseName: "Temperature",
  dataType: "Double",
  minimumSamplingInterval: 50,
  value: { get: () => new Variant({ dataType: DataType.Double, value: temperature }) },
});
const timer = setInterval(() => {
  temperature = 22.0 + ((temperature - 21.9) % 3.0);
}, 100);

await server.start();
process.stdout.write(`READY ${server.endpoints[0].port}\n`);

// "trust <file>" on stdin: trust a client certificate (DER or PEM) through the certificate
// manager (file and in-memory index at once), then print "TRUSTED <file>".
const input = createInterface({ input: process.stdin });
input.on("line", async (line) => {
  const [command, ...rest] = line.trim().split(" ");
  if (command !== "trust") return;
  const file = rest.join(" ");
  let data = readFileSync(file);
  const text = data.toString("latin1");
  if (text.includes("-----BEGIN CERTIFICATE-----")) {
    const body = text.split("-----BEGIN CERTIFICATE-----")[1].split("-----END CERTIFICATE-----")[0];
    data = Buffer.from(body.replace(/\s+/g, ""), "base64");
  }
  await serverCertificateManager.trustCertificate(data);
  process.stdout.write(`TRUSTED ${file}\n`);
});

const stop = async () => {
  clearInterval(timer);
  await server.shutdown(0);
  await serverCertificateManager.dispose();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
