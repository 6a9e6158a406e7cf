// Experiment (issue 16): the CPU the auth step itself adds to one call, measured
// in-process with process.cpuUsage() over many calls, so a loaded machine moves
// it little (CPU time, not wall time; compare with auth-ab.mjs's end-to-end
// server CPU per call, which a shared machine moves by 2-5x). Paths:
//   token        a known (cached) API token: metadata read, regex, Map lookup,
//                expiry check, the access line, the grant scan
//   cert-cached  a client certificate on a connection already seen: the
//                per-session identity (peerSession.ts), file map, stored grants
//   cert-read    the same without the per-session cache: what reading the
//                certificate on every call cost (a real TLS socket's
//                getPeerCertificate(), as grpc-js's getAuthContext() calls it)
//   npm run build && node bench/experiments/auth-step-cost.mjs [--calls 200000]
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import console from "node:console";
import { createRequire } from "node:module";
import process from "node:process";
import * as tls from "node:tls";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const require = createRequire(import.meta.url);
const { Metadata } = require("@grpc/grpc-js");
const { AuthStep } = require(path.join(root, "dist/src/grpc/auth/AuthStep.js"));
const { CredentialAuthenticator } = require(path.join(root, "dist/src/auth/CredentialAuthenticator.js"));
const { CertPrincipals } = require(path.join(root, "dist/src/auth/certPrincipals.js"));
const { hashToken } = require(path.join(root, "dist/src/auth/tokens.js"));
const { TestCerts } = require(path.join(root, "dist/test/support/testCerts.js"));

const { values } = parseArgs({ options: { calls: { type: "string", default: "200000" } } });
const calls = Number(values.calls);
const grants = [{ namespace: "bench", prefix: "", roles: ["read", "write"] }];
const token = `agst_${randomBytes(32).toString("base64url")}`;
const tokens = {
  findByHash: async (h) =>
    h.equals(hashToken(token))
      ? { id: "t1", principal: "bench", grants, createdAt: new Date(), expiresAt: undefined, revokedAt: undefined }
      : undefined,
};
const stored = { find: async () => [] };
const certs = new TestCerts();
const ctx = { log: { warn: () => undefined } };
const req = { namespace: "bench", key: "hot" };

function measure(name, fn) {
  for (let i = 0; i < 2000; i++) fn(); // warm up, fill the caches
  const t0 = process.cpuUsage();
  for (let i = 0; i < calls; i++) fn();
  const d = process.cpuUsage(t0);
  const us = (d.user + d.system) / calls;
  console.log(`| ${name} | ${us.toFixed(2)} |`);
  return us;
}

try {
  const ca = certs.ca("ca");
  const leaf = certs.leaf("server", ca);
  const clientCert = certs.leaf("bench-client", ca, "bench-client");
  const principals = path.join(certs.dir, "principals.json");
  fs.writeFileSync(principals, JSON.stringify([{ cn: "bench-client", principal: "bench", grants }]));
  // A real TLS connection, for a real peer certificate.
  const server = tls.createServer({
    cert: fs.readFileSync(leaf.cert),
    key: fs.readFileSync(leaf.key),
    ca: fs.readFileSync(ca.cert),
    requestCert: true,
    rejectUnauthorized: true,
  });
  const serverSocket = new Promise((resolve) => server.once("secureConnection", resolve));
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const client = tls.connect({
    port: server.address().port,
    host: "127.0.0.1",
    ca: fs.readFileSync(ca.cert),
    cert: fs.readFileSync(clientCert.cert),
    key: fs.readFileSync(clientCert.key),
    checkServerIdentity: () => undefined,
  });
  const socket = await serverSocket;
  const authContext = () => ({ transportSecurityType: "ssl", sslPeerCertificate: socket.getPeerCertificate() });

  const auth = new CredentialAuthenticator({
    tokens,
    grants: stored,
    jwt: undefined,
    certs: CertPrincipals.load(principals),
    cacheMs: 60_000,
  });
  auth.reset(true);
  const step = new AuthStep(auth);
  await step.admit("Get", { metadata: bearer(token) }, req, ctx); // verify once: cached from here
  const certCall = { metadata: new Metadata(), getAuthContext: authContext, call: { stream: { session: {} } } };
  await step.admit("Get", certCall, req, ctx); // stored grants read once: cached from here

  console.log(`${calls} calls each, CPU per call (process.cpuUsage)\n`);
  console.log("| path | auth step µs/call |\n| --- | --- |");
  measure("token (cached)", () => step.admit("Get", { metadata: bearer(token) }, req, ctx));
  measure("cert-cached (same connection)", () => step.admit("Get", certCall, req, ctx));
  measure("cert-read (no per-connection cache)", () =>
    step.admit("Get", { metadata: new Metadata(), getAuthContext: authContext }, req, ctx),
  );
  measure("(the Metadata per call alone, for scale)", () => bearer(token));
  client.destroy();
  server.close();
} finally {
  certs.remove();
}

function bearer(t) {
  const md = new Metadata();
  md.set("authorization", `Bearer ${t}`);
  return md;
}
