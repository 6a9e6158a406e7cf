/** With auth on, reflection and /metrics follow it too; health and /healthz stay open for probes. */
import * as assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Client, credentials, Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { createToken } from "../support/authFixture";
import { TestCerts } from "../support/testCerts";
import { findGrpcurl } from "../support/grpcurl";
import { HealthClient } from "../support/HealthClient";
import { RpcByName } from "../support/rpcByName";
import { ServerProcess } from "../support/ServerProcess";
import { getTestEnv } from "../support/TestEnv";

/** One ServerReflectionInfo list_services exchange; resolves with the error, undefined if it answered. */
function reflect(address: string, bearer?: string): Promise<ServiceError | undefined> {
  const client = new Client(address, credentials.createInsecure());
  const md = new Metadata();
  if (bearer) md.set("authorization", `Bearer ${bearer}`);
  const call = client.makeBidiStreamRequest(
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    (b: Buffer) => b,
    (b: Buffer) => b,
    md,
  );
  return new Promise<ServiceError | undefined>((resolve) => {
    call.on("data", () => {
      call.cancel();
      resolve(undefined);
    });
    call.on("error", (err: ServiceError) => resolve(err));
    call.write(Buffer.from([0x3a, 0x00])); // list_services: ""
    call.end();
  }).finally(() => client.close());
}

describe("security: reflection and /metrics follow auth; health stays open", function () {
  this.timeout(120_000);
  let server: ServerProcess;
  let metricsAt: string;
  const admin = `agst_${randomBytes(32).toString("base64url")}`;

  before(async () => {
    const env = await getTestEnv();
    server = await ServerProcess.start({
      DATABASE_URL: await env.freshDatabase("auth_surfaces"),
      AGENTSTATE_AUTH: "required",
      AGENTSTATE_BOOTSTRAP_TOKEN: admin,
    });
    metricsAt = String(server.logs().find((l) => l.msg === "listening")!.metrics);
  });

  after(() => server?.stop());

  it("reflection needs a principal with some grant", async () => {
    const none = await reflect(server.address);
    assert.equal(none?.code, status.UNAUTHENTICATED, String(none));
    const bad = await reflect(server.address, `agst_${randomBytes(32).toString("base64url")}`);
    assert.equal(bad?.code, status.UNAUTHENTICATED, String(bad));
    const rpc = new RpcByName(server.address);
    const reader = await createToken(rpc, admin, "reader", [{ namespace: "demo", roles: ["read"] }]);
    rpc.close();
    assert.equal(await reflect(server.address, reader.token), undefined);
  });

  it("/metrics needs a token (401 without), /healthz and gRPC health need none", async () => {
    const bare = await fetch(`http://${metricsAt}/metrics`);
    assert.equal(bare.status, 401);
    const wrong = await fetch(`http://${metricsAt}/metrics`, { headers: { authorization: "Bearer nope" } });
    assert.equal(wrong.status, 401);
    const ok = await fetch(`http://${metricsAt}/metrics`, { headers: { authorization: `Bearer ${admin}` } });
    assert.equal(ok.status, 200);
    assert.match(await ok.text(), /agentstate_rpc_total/);
    const healthz = await fetch(`http://${metricsAt}/healthz`);
    assert.equal(healthz.status, 200);
    const health = new HealthClient(server.address);
    assert.equal(await health.check(""), "SERVING");
    health.close();
  });
});

describe("README security recipes: grpcurl with -cacert and a bearer token, run as written", function () {
  this.timeout(120_000);

  it("a token made with the CLI writes and reads in its grant, and is refused outside it", async () => {
    const certs = new TestCerts();
    const ca = certs.ca("ca");
    const leaf = certs.leaf("server", ca);
    // ca.cert is ca.pem in certs.dir, where the block runs.
    const admin = `agst_${randomBytes(32).toString("base64url")}`;
    const env = await getTestEnv();
    const server = await ServerProcess.start({
      DATABASE_URL: await env.freshDatabase("auth_readme"),
      AGENTSTATE_TLS_CERT_FILE: leaf.cert,
      AGENTSTATE_TLS_KEY_FILE: leaf.key,
      AGENTSTATE_AUTH: "required",
      AGENTSTATE_BOOTSTRAP_TOKEN: admin,
    });
    try {
      const md = readFileSync(resolve(__dirname, "../../../README.md"), "utf8");
      const block = /<!-- security-recipes:begin -->\s*```sh\n([\s\S]*?)```\s*<!-- security-recipes:end -->/.exec(md);
      assert.ok(block, "README has no security-recipes block");
      // Only the address and the command's path are rewritten.
      const cli = `'${process.execPath}' '${resolve(__dirname, "../../src/cli/main.js")}'`;
      const script =
        "set -euo pipefail\n" +
        block[1]!.replaceAll("127.0.0.1:50051", server.address).replaceAll("npx agentstate", cli);
      const grpcurl = findGrpcurl();
      const out = execFileSync("bash", ["-c", script], {
        cwd: certs.dir,
        encoding: "utf8",
        stdio: ["ignore", "pipe", "pipe"],
        env: {
          ...process.env,
          PATH: `${dirname(grpcurl)}:${process.env["PATH"]}`,
          AGENTSTATE_TOKEN: admin,
          AGENTSTATE_PORT: String(server.port),
        },
      });
      assert.match(out, /"applied": true/);
      assert.match(out, /"found": true/);
      const denied = await server.waitForLog((l) => l.msg === "call denied" && l.rpc === "Get");
      assert.equal(denied.code, "PERMISSION_DENIED");
      assert.match(String(denied.reason), /Get needs role "read" on namespace "demo" for key "secrets\/1"/);
    } finally {
      await server.stop();
      certs.remove();
    }
  });
});
