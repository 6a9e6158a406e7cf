/**
 * Auth at the edges: client certificates as principals (mTLS), metadata no
 * client would send (fuzzed), and what the logs of a run with tokens and JWTs
 * must never hold.
 */
import * as assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as http2 from "node:http2";
import * as path from "node:path";
import { credentials, status } from "@grpc/grpc-js";
import fc from "fast-check";
import { AgentstateClient } from "../../clients/typescript/src/AgentstateClient";
import { GetRequest } from "../../src/gen/agentstate/v1/kv";
import { createToken, JwtKeys } from "../support/authFixture";
import { eventually } from "../support/eventually";
import { HealthClient } from "../support/HealthClient";
import { RpcByName } from "../support/rpcByName";
import { ServerProcess } from "../support/ServerProcess";
import { getTestEnv } from "../support/TestEnv";
import { TestCerts, type CertFiles } from "../support/testCerts";

function ssl(ca: CertFiles, client?: CertFiles) {
  return credentials.createSsl(
    fs.readFileSync(ca.cert),
    client ? fs.readFileSync(client.key) : null,
    client ? fs.readFileSync(client.cert) : null,
  );
}

const get = (namespace: string) => ({ namespace, key: "k" });

describe("security: client certificates as principals (mTLS + AGENTSTATE_AUTH=required)", function () {
  this.timeout(120_000);
  let certs: TestCerts;
  let ca: CertFiles;
  let clientCa: CertFiles;
  let server: ServerProcess;
  const admin = `agst_${randomBytes(32).toString("base64url")}`;

  before(async () => {
    certs = new TestCerts();
    ca = certs.ca("ca");
    clientCa = certs.ca("client-ca");
    const leaf = certs.leaf("server", ca);
    const principals = path.join(certs.dir, "principals.json");
    fs.writeFileSync(
      principals,
      JSON.stringify([
        { cn: "agent-1", principal: "agent-one", grants: [{ namespace: "demo", roles: ["read", "write"] }] },
        { uri: "spiffe://test/billing", principal: "billing", grants: [{ namespace: "billing", roles: ["read"] }] },
      ]),
    );
    const env = await getTestEnv();
    server = await ServerProcess.start({
      DATABASE_URL: await env.freshDatabase("auth_mtls"),
      AGENTSTATE_TLS_CERT_FILE: leaf.cert,
      AGENTSTATE_TLS_KEY_FILE: leaf.key,
      AGENTSTATE_TLS_CLIENT_CA_FILE: clientCa.cert,
      AGENTSTATE_AUTH: "required",
      AGENTSTATE_AUTH_CERT_PRINCIPALS_FILE: principals,
      AGENTSTATE_BOOTSTRAP_TOKEN: admin,
    });
  });

  after(async () => {
    await server?.stop();
    certs?.remove();
  });

  async function getAs(client: CertFiles | undefined, namespace: string, bearer?: string) {
    const rpc = new RpcByName(server.address, ssl(ca, client));
    try {
      return await rpc.call("Get", get(namespace), bearer);
    } finally {
      rpc.close();
    }
  }

  it("a mapped certificate (by CN or by URI SAN) is its principal, with its grants", async () => {
    const one = certs.leaf("agent-1", clientCa, "agent-1");
    assert.equal((await getAs(one, "demo")).code, status.OK);
    const denied = await getAs(one, "billing");
    assert.equal(denied.code, status.PERMISSION_DENIED);
    assert.match(denied.details, /principal "agent-one": Get needs role "read" on namespace "billing"/);
    const billing = certs.leaf("billing", clientCa, "whatever", "spiffe://test/billing");
    assert.equal((await getAs(billing, "billing")).code, status.OK);
    assert.equal((await getAs(billing, "demo")).code, status.PERMISSION_DENIED);
  });

  it("a certificate of the client CA mapped to nothing is UNAUTHENTICATED; a bearer token on it wins", async () => {
    const stranger = certs.leaf("stranger", clientCa, "stranger");
    const r = await getAs(stranger, "demo");
    assert.equal(r.code, status.UNAUTHENTICATED);
    assert.equal(r.details, "the client certificate is mapped to no principal");
    assert.equal((await getAs(stranger, "anything", admin)).code, status.OK);
  });

  it("the TypeScript client sends its token (fixed or from a source) on every call, unary and streaming", async () => {
    const stranger = certs.leaf("ts-client", clientCa, "ts-client"); // mapped to nothing: only the token counts
    const tls = { caFile: ca.cert, certFile: stranger.cert, keyFile: stranger.key };
    let asked = 0;
    for (const token of [admin, async () => (asked++, admin)]) {
      const client = new AgentstateClient(server.address, { tls, token });
      try {
        await client.put("ts", "k", "v");
        assert.equal((await client.get({ namespace: "ts", key: "k" })).found, true);
        await client.appendEvent("ts", "s", [{ type: "t", data: Buffer.from("e") }], "any");
        const seen = [];
        for await (const e of client.readStream("ts", "s")) seen.push(e);
        assert.ok(seen.length >= 1);
      } finally {
        client.close();
      }
    }
    assert.ok(asked >= 4, `the token source was asked ${asked} times`);
    const without = new AgentstateClient(server.address, { tls });
    await assert.rejects(
      without.get({ namespace: "ts", key: "k" }),
      (e: { code: number }) => e.code === status.UNAUTHENTICATED,
    );
    const failing = new AgentstateClient(server.address, {
      tls,
      token: () => Promise.reject(new Error("no token today")),
    });
    await assert.rejects(
      failing.get({ namespace: "ts", key: "k" }),
      (e: { code: number; details: string }) => e.code === status.UNAUTHENTICATED && /no token today/.test(e.details),
    );
    without.close();
    failing.close();
  });

  it("under load, while the server certificate rotates and clients come with new certificates, every call maps to its own connection's principal (zero failed calls)", async function () {
    this.timeout(90_000);
    const first = certs.leaf("rot-server-1", ca);
    const second = certs.leaf("rot-server-2", ca);
    const live: CertFiles = { cert: path.join(certs.dir, "live.pem"), key: path.join(certs.dir, "live.key") };
    fs.copyFileSync(first.cert, live.cert);
    fs.copyFileSync(first.key, live.key);
    const env = await getTestEnv();
    const rotating = await ServerProcess.start({
      DATABASE_URL: await env.freshDatabase("auth_mtls_rotation"),
      AGENTSTATE_TLS_CERT_FILE: live.cert,
      AGENTSTATE_TLS_KEY_FILE: live.key,
      AGENTSTATE_TLS_CLIENT_CA_FILE: clientCa.cert,
      AGENTSTATE_TLS_RELOAD_MS: "100",
      AGENTSTATE_AUTH: "required",
      AGENTSTATE_AUTH_CERT_PRINCIPALS_FILE: path.join(certs.dir, "principals.json"),
      AGENTSTATE_BOOTSTRAP_TOKEN: admin,
    });
    // Each client: its certificate (a fresh one per connection, as a rotating
    // client would bring), the namespace its principal may read, and one it may not.
    const kinds = [
      { mint: (i: string) => certs.leaf(`a-${i}`, clientCa, "agent-1"), own: "demo", other: "billing" },
      {
        mint: (i: string) => certs.leaf(`b-${i}`, clientCa, `b-${i}`, "spiffe://test/billing"),
        own: "billing",
        other: "demo",
      },
    ];
    const minted = kinds.map((k, i) => [0, 1, 2].map((n) => k.mint(`${i}-${n}`)));
    let stop = false;
    const failures: string[] = [];
    let calls = 0;
    const loop = async (w: number) => {
      for (let round = 0; !stop; round++) {
        const kind = kinds[(w + round) % 2]!;
        const cert = minted[(w + round) % 2]![round % 3]!;
        const rpc = new RpcByName(rotating.address, ssl(ca, cert));
        try {
          for (let i = 0; i < 10 && !stop; i++) {
            const mine = await rpc.call("Get", get(kind.own));
            const theirs = await rpc.call("Get", get(kind.other));
            calls += 2;
            if (mine.code !== status.OK) failures.push(`${kind.own}: ${status[mine.code]} ${mine.details}`);
            if (theirs.code !== status.PERMISSION_DENIED) failures.push(`${kind.other}: ${status[theirs.code]}`);
          }
        } finally {
          rpc.close();
        }
      }
    };
    try {
      const loops = [0, 1, 2, 3].map(loop);
      // Calls in flight on both sides of the rotation: wait for calls made, not for time passed.
      const before = calls;
      await eventually("calls before the rotation", async () => calls >= before + 40 || undefined);
      fs.copyFileSync(second.cert, live.cert);
      fs.copyFileSync(second.key, live.key);
      await rotating.waitForLog((l) => l.msg === "TLS certificate reloaded");
      const reloaded = calls;
      await eventually("calls after the rotation", async () => calls >= reloaded + 40 || undefined);
      stop = true;
      await Promise.all(loops);
    } finally {
      stop = true;
      await rotating.stop();
    }
    assert.deepEqual(failures, []);
    assert.ok(calls > 50, `only ${calls} calls ran`);
  });

  it("no client certificate, or one from another CA, fails the handshake", async () => {
    assert.equal((await getAs(undefined, "demo", admin)).code, status.UNAVAILABLE);
    const otherCa = certs.ca("other-ca");
    const foreign = certs.leaf("foreign", otherCa, "agent-1");
    assert.equal((await getAs(foreign, "demo")).code, status.UNAVAILABLE);
  });
});

/** One raw HTTP/2 gRPC Get with `headers`; resolves with the grpc-status (or the stream error's code). */
function rawGet(address: string, headers: http2.OutgoingHttpHeaders): Promise<string> {
  return new Promise((resolve) => {
    const session = http2.connect(`http://${address}`);
    session.on("error", () => undefined);
    const body = Buffer.from(GetRequest.encode({ namespace: "demo", key: "k", consistency: 0 }).finish());
    const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, body.length]), body]);
    let req: http2.ClientHttp2Stream;
    try {
      req = session.request({
        ":method": "POST",
        ":path": "/agentstate.v1.KeyValueService/Get",
        "content-type": "application/grpc",
        te: "trailers",
        ...headers,
      });
    } catch (err) {
      session.destroy();
      return resolve(`client refused: ${(err as NodeJS.ErrnoException).code}`);
    }
    let grpcStatus: string | undefined;
    const done = (s: string) => {
      session.destroy();
      resolve(s);
    };
    req.on("response", (h) => (grpcStatus ??= h["grpc-status"] as string | undefined));
    req.on("trailers", (h) => (grpcStatus = h["grpc-status"] as string | undefined));
    req.on("data", () => undefined);
    req.on("end", () => done(grpcStatus ?? "no status"));
    req.on("error", (err: NodeJS.ErrnoException) => done(`stream error: ${err.code}`));
    req.setTimeout(10_000, () => done("timeout"));
    req.end(frame);
  });
}

describe("security: fuzzed metadata never crashes an auth-required server", function () {
  this.timeout(180_000);
  let server: ServerProcess;

  before(async () => {
    const env = await getTestEnv();
    server = await ServerProcess.start({
      DATABASE_URL: await env.freshDatabase("auth_fuzz"),
      AGENTSTATE_AUTH: "required",
      AGENTSTATE_BOOTSTRAP_TOKEN: `agst_${randomBytes(32).toString("base64url")}`,
    });
  });

  after(() => server?.stop());

  it("huge, binary, repeated and random authorization values: UNAUTHENTICATED or a refused stream, and it keeps serving", async () => {
    const unauth = String(status.UNAUTHENTICATED);
    const outcomes = new Map<string, number>();
    const note = (s: string) => outcomes.set(s, (outcomes.get(s) ?? 0) + 1);
    // Fixed shapes.
    for (const headers of [
      { authorization: `Bearer ${"a".repeat(15_000)}` }, // near the header list limit
      { authorization: `Bearer ${"a".repeat(100_000)}` }, // far past it
      { authorization: "Bearer eyJ" + "A".repeat(5000) + ".e30.sig" },
      { authorization: "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0." }, // alg none
      { authorization: ["Bearer a", "Bearer b"] },
      { "authorization-bin": randomBytes(512).toString("base64") },
      {
        authorization: Buffer.from(randomBytes(64))
          .toString("latin1")
          .replace(/[\r\n\0]/g, "x"),
      },
      Object.fromEntries(Array.from({ length: 500 }, (_, i) => [`x-junk-${i}`, "v".repeat(20)])),
      { authorization: "Bearer" },
      { authorization: "bearer      " },
    ]) {
      const s = await rawGet(server.address, headers as http2.OutgoingHttpHeaders);
      note(s);
      assert.ok(
        s === unauth || /^(stream error|client refused)/.test(s),
        `${JSON.stringify(headers).slice(0, 80)}: ${s}`,
      );
    }
    // Random ones.
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.string({ maxLength: 300 }),
          fc.stringMatching(/^[A-Za-z0-9._~+/=-]{0,600}$/),
          fc.tuple(fc.base64String(), fc.base64String(), fc.base64String()).map((p) => `eyJ${p.join(".")}`),
        ),
        fc.constantFrom("Bearer ", "bearer ", "Basic ", "", "Bearer  "),
        async (v, scheme) => {
          const value = (scheme + v).replace(/[\r\n\0]/g, "");
          const s = await rawGet(server.address, { authorization: value });
          note(s);
          return s === unauth || /^(stream error|client refused)/.test(s);
        },
      ),
      { numRuns: 300 },
    );
    console.log(`      outcomes: ${JSON.stringify(Object.fromEntries(outcomes))}`);
    assert.ok(server.running, "the server exited");
    const health = new HealthClient(server.address);
    assert.equal(await health.check(""), "SERVING");
    health.close();
    assert.ok(
      !server.logs().some((l) => l.msg === "internal error" || l.msg === "unhandled rejection"),
      server.tail(20),
    );
  });
});

describe("security: no log line of a run with tokens and JWTs holds a secret", function () {
  this.timeout(120_000);

  it("tokens, JWTs, values and the database password never appear in the output", async () => {
    const env = await getTestEnv();
    const password = `pw${randomBytes(12).toString("hex")}`;
    // Trust authentication ignores the password, which is then only a secret to look for.
    const url = (await env.freshDatabase("auth_logs")).replace(
      "postgres://postgres@",
      `postgres://postgres:${password}@`,
    );
    const jwt = new JwtKeys();
    const admin = `agst_${randomBytes(32).toString("base64url")}`;
    const server = await ServerProcess.start({
      DATABASE_URL: url,
      AGENTSTATE_AUTH: "required",
      AGENTSTATE_BOOTSTRAP_TOKEN: admin,
      LOG_LEVEL: "debug",
      ...jwt.env(),
    });
    const rpc = new RpcByName(server.address);
    const secrets = [admin, password];
    try {
      const grants = [{ namespace: "demo", prefix: "p/", roles: ["read", "write"] as const }];
      const t = await createToken(
        rpc,
        admin,
        "logged",
        [...grants].map((g) => ({ ...g, roles: [...g.roles] })),
      );
      const expired = await createToken(rpc, admin, "short", [{ namespace: "demo", roles: ["read"] }], 1);
      const good = await jwt.sign("jwt-agent", grants);
      const badSig = await jwt.sign("jwt-agent", grants, { otherKey: true });
      const value = `value-${randomBytes(8).toString("hex")}`;
      secrets.push(t.token, expired.token, good, badSig, value, jwt.secret.toString("base64url"));
      // The 1 s token expires through the real path: poll until it is refused.
      await eventually("the 1 s token to expire", async () => {
        const r = await rpc.call("Get", { namespace: "demo", key: "p/k" }, expired.token);
        return r.code === status.UNAUTHENTICATED && r.details === "token expired";
      });
      const put = { namespace: "demo", key: "p/k", expected: { any: true }, value: Buffer.from(value) };
      for (const cred of [t.token, good, badSig, expired.token, `agst_${"x".repeat(43)}`, undefined]) {
        await rpc.call("CompareAndSet", put, cred);
        await rpc.call("Get", { namespace: "demo", key: "p/k" }, cred);
        await rpc.call("Get", { namespace: "other", key: "p/k" }, cred);
      }
      await rpc.call("RevokeToken", { id: t.id }, admin);
      await rpc.call("Get", { namespace: "demo", key: "p/k" }, t.token);
    } finally {
      rpc.close();
      await server.stop();
      jwt.remove();
    }
    assert.ok(server.logs().filter((l) => l.msg === "call denied").length >= 10);
    for (const line of server.lines) {
      for (const s of secrets) assert.ok(!line.includes(s), `a secret in: ${line.slice(0, 300)}`);
      assert.doesNotMatch(line, /agst_|eyJ/, line.slice(0, 300));
    }
  });
});
