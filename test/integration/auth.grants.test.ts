/**
 * Grants stored in the server for named principals (AdminService GrantRoles,
 * RevokeGrant, ListGrants; `agentstate grant`): a certificate principal and a
 * JWT subject gain and lose roles at run time, on every replica within a
 * second, and an API token never takes them.
 */
import * as assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { credentials, status } from "@grpc/grpc-js";
import { createToken, JwtKeys, ROLE } from "../support/authFixture";
import { RpcByName, type RpcOutcome } from "../support/rpcByName";
import { ServerProcess } from "../support/ServerProcess";
import { getTestEnv } from "../support/TestEnv";
import { TestCerts, type CertFiles } from "../support/testCerts";

const CLI = path.resolve(__dirname, "../../src/cli/main.js");

function cli(port: number, admin: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(
      process.execPath,
      [CLI, ...args],
      {
        env: { PATH: process.env.PATH ?? "", AGENTSTATE_PORT: String(port), AGENTSTATE_TOKEN: admin },
        timeout: 30_000,
      },
      (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === "number" ? err.code : -1) : 0, stdout, stderr }),
    ),
  );
}

/** Calls `probe` until its code is `want`; resolves with how long that took (ms) and the last outcome. */
async function untilCode(probe: () => Promise<RpcOutcome>, want: status): Promise<{ ms: number; r: RpcOutcome }> {
  const since = Date.now();
  let r: RpcOutcome;
  while ((r = await probe()).code !== want && Date.now() - since < 5000) {
    await new Promise((res) => setTimeout(res, 20));
  }
  return { ms: Date.now() - since, r };
}

const get = { namespace: "demo", key: "k" };

describe("security: grants stored for named principals (GrantRoles, RevokeGrant, ListGrants)", function () {
  this.timeout(180_000);
  const admin = `agst_${randomBytes(32).toString("base64url")}`;
  let certs: TestCerts;
  let jwt: JwtKeys;
  let agentCert: CertFiles;
  /** Replica A: plaintext on loopback (the CLI and the admin calls). */
  let serverA: ServerProcess;
  /** Replica B: mTLS, trusts what it read for a minute: only a change's notice makes it forget sooner. */
  let serverB: ServerProcess;
  let a: RpcByName;
  let bCert: RpcByName;
  let bPlain: RpcByName;

  before(async () => {
    certs = new TestCerts();
    jwt = new JwtKeys();
    const ca = certs.ca("ca");
    const clientCa = certs.ca("client-ca");
    const leaf = certs.leaf("server", ca);
    agentCert = certs.leaf("agent-1", clientCa, "agent-1");
    const principals = path.join(certs.dir, "principals.json");
    // agent-one's file entry grants nothing: everything it may do comes from the stored grants.
    fs.writeFileSync(principals, JSON.stringify([{ cn: "agent-1", principal: "agent-one", grants: [] }]));
    const env = await getTestEnv();
    const common = {
      DATABASE_URL: await env.freshDatabase("auth_grants"),
      AGENTSTATE_AUTH: "required",
      AGENTSTATE_BOOTSTRAP_TOKEN: admin,
      ...jwt.env(),
    };
    serverA = await ServerProcess.start(common);
    serverB = await ServerProcess.start({
      ...common,
      AGENTSTATE_AUTH_CACHE_MS: "60000",
      AGENTSTATE_TLS_CERT_FILE: leaf.cert,
      AGENTSTATE_TLS_KEY_FILE: leaf.key,
      AGENTSTATE_TLS_CLIENT_CA_FILE: clientCa.cert,
      AGENTSTATE_AUTH_CERT_PRINCIPALS_FILE: principals,
    });
    a = new RpcByName(serverA.address);
    const tls = (client: CertFiles) =>
      credentials.createSsl(fs.readFileSync(ca.cert), fs.readFileSync(client.key), fs.readFileSync(client.cert));
    bCert = new RpcByName(serverB.address, tls(agentCert));
    // A certificate mapped to nothing: on B only bearer credentials count.
    bPlain = new RpcByName(serverB.address, tls(certs.leaf("nobody", clientCa, "nobody")));
  });

  after(async () => {
    for (const c of [a, bCert, bPlain]) c?.close();
    await Promise.all([serverA, serverB].map((s) => s?.stop()));
    certs?.remove();
    jwt?.remove();
  });

  it("a certificate principal gains a role on every replica within a second of GrantRoles, and loses it within a second of RevokeGrant", async () => {
    const denied = await bCert.call("Get", get);
    assert.equal(denied.code, status.PERMISSION_DENIED, denied.details);
    assert.match(denied.details, /principal "agent-one": Get needs role "read" on namespace "demo"/);
    const granted = await a.call(
      "GrantRoles",
      { principal: "agent-one", grant: { namespace: "demo", roles: [ROLE.read] } },
      admin,
    );
    assert.equal(granted.code, status.OK, granted.details);
    const up = await untilCode(() => bCert.call("Get", get), status.OK);
    assert.equal(up.r.code, status.OK, up.r.details);
    assert.ok(up.ms < 1000, `replica B saw the grant after ${up.ms} ms`);
    // Cached on B from here (for a minute): only the notice can take the role away this soon.
    assert.equal((await bCert.call("Get", get)).code, status.OK);
    const revoked = await a.call("RevokeGrant", { principal: "agent-one", namespace: "demo", roles: [] }, admin);
    assert.equal(revoked.code, status.OK, revoked.details);
    assert.equal((revoked.reply as { grant?: unknown }).grant, undefined, "the grant is gone");
    const down = await untilCode(() => bCert.call("Get", get), status.PERMISSION_DENIED);
    assert.equal(down.r.code, status.PERMISSION_DENIED, down.r.details);
    assert.ok(down.ms < 1000, `replica B still allowed the revoked grant ${down.ms} ms after`);
  });

  it("a JWT subject's effective grants are its claim's and the stored ones together", async () => {
    const token = await jwt.sign("jwt-agent", [{ namespace: "claims", roles: ["read"] }]);
    const other = { namespace: "stored", key: "k" };
    assert.equal((await bPlain.call("Get", other, token)).code, status.PERMISSION_DENIED);
    const granted = await a.call(
      "GrantRoles",
      { principal: "jwt-agent", grant: { namespace: "stored", prefix: "", roles: [ROLE.read, ROLE.write] } },
      admin,
    );
    assert.equal(granted.code, status.OK, granted.details);
    const up = await untilCode(() => bPlain.call("Get", other, token), status.OK);
    assert.ok(up.ms < 1000, `replica B saw the grant after ${up.ms} ms`);
    assert.equal((await bPlain.call("Get", { namespace: "claims", key: "k" }, token)).code, status.OK);
    // Taking one role leaves the other.
    const left = await a.call(
      "RevokeGrant",
      { principal: "jwt-agent", namespace: "stored", roles: [ROLE.read] },
      admin,
    );
    assert.equal(left.code, status.OK, left.details);
    assert.deepEqual((left.reply as { grant: { grant: { roles: number[] } } }).grant.grant.roles, [ROLE.write]);
    const down = await untilCode(() => bPlain.call("Get", other, token), status.PERMISSION_DENIED);
    assert.ok(down.ms < 1000, `replica B still allowed the revoked role ${down.ms} ms after`);
    const put = { namespace: "stored", key: "k", expected: { any: true }, value: Buffer.from("v") };
    assert.equal((await bPlain.call("CompareAndSet", put, token)).code, status.OK);
  });

  it("an API token never takes the stored grants of its principal's name", async () => {
    await a.call("GrantRoles", { principal: "same-name", grant: { namespace: "demo", roles: [ROLE.read] } }, admin);
    const t = await createToken(a, admin, "same-name", [{ namespace: "elsewhere", roles: ["read"] }]);
    const r = await a.call("Get", get, t.token);
    assert.equal(r.code, status.PERMISSION_DENIED, r.details);
  });

  it("agentstate grant add, list and revoke; bad requests name the field; the per-principal limit is named", async () => {
    const added = await cli(serverA.port, admin, [
      "grant",
      "add",
      "--principal",
      "cli-agent",
      "--namespace",
      "demo*",
      "--prefix",
      "p/",
      "--role",
      "read,lock",
    ]);
    assert.equal(added.code, 0, added.stderr);
    assert.match(added.stdout, /^cli-agent\s+demo\*\s+p\/\s+read,lock\s/m);
    const more = await cli(serverA.port, admin, [
      "grant",
      "add",
      "--principal",
      "cli-agent",
      "--namespace",
      "demo*",
      "--prefix",
      "p/",
      "--role",
      "write",
    ]);
    assert.match(more.stdout, /^cli-agent\s+demo\*\s+p\/\s+read,write,lock\s/m, more.stderr);
    const listed = await cli(serverA.port, admin, ["grant", "list", "--principal", "cli-agent"]);
    assert.equal(listed.code, 0, listed.stderr);
    assert.equal(listed.stdout.trim().split("\n").length, 2, listed.stdout);
    const gone = await cli(serverA.port, admin, [
      "grant",
      "revoke",
      "--principal",
      "cli-agent",
      "--namespace",
      "demo*",
      "--prefix",
      "p/",
    ]);
    assert.equal(gone.code, 0, gone.stderr);
    assert.equal(gone.stdout, "grant removed\n");
    const again = await cli(serverA.port, admin, [
      "grant",
      "revoke",
      "--principal",
      "cli-agent",
      "--namespace",
      "demo*",
      "--prefix",
      "p/",
    ]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /holds no stored grant on namespace "demo\*"/);
    const usage = await cli(serverA.port, admin, ["grant", "add", "--principal", "x", "--namespace", "demo"]);
    assert.equal(usage.code, 2);

    const bad = await a.call(
      "GrantRoles",
      { principal: "x", grant: { namespace: "Bad NS", roles: [ROLE.read] } },
      admin,
    );
    assert.equal(bad.code, status.INVALID_ARGUMENT);
    assert.match(bad.details, /^grant\.namespace: must be a namespace/);
    const badRevoke = await a.call(
      "RevokeGrant",
      { principal: "x", namespace: "demo", prefix: "p".repeat(2000) },
      admin,
    );
    assert.equal(badRevoke.code, status.INVALID_ARGUMENT);
    assert.match(badRevoke.details, /^prefix: must be a string of at most 1024 bytes/);
    const noRole = await a.call("GrantRoles", { principal: "x", grant: { namespace: "demo", roles: [] } }, admin);
    assert.equal(noRole.code, status.INVALID_ARGUMENT);
    const noPrincipal = await a.call("GrantRoles", { principal: "", grant: { namespace: "demo", roles: [1] } }, admin);
    assert.equal(noPrincipal.code, status.INVALID_ARGUMENT);
    assert.match(noPrincipal.details, /principal/);

    for (let i = 0; i < 64; i++) {
      const r = await a.call(
        "GrantRoles",
        { principal: "many", grant: { namespace: `ns${i}`, roles: [ROLE.read] } },
        admin,
      );
      assert.equal(r.code, status.OK, r.details);
    }
    const over = await a.call(
      "GrantRoles",
      { principal: "many", grant: { namespace: "ns64", roles: [ROLE.read] } },
      admin,
    );
    assert.equal(over.code, status.RESOURCE_EXHAUSTED);
    assert.match(over.details, /64 stored grants, the limit \(grants per principal\)/);
    // Adding a role to a grant it holds is no new grant.
    const widen = await a.call(
      "GrantRoles",
      { principal: "many", grant: { namespace: "ns0", roles: [ROLE.write] } },
      admin,
    );
    assert.equal(widen.code, status.OK, widen.details);
    // Paging: 65 rows of "many" in pages of 10, in order, each once.
    const seen: string[] = [];
    let pageToken = "";
    do {
      const r = await a.call("ListGrants", { principal: "many", limit: 10, pageToken }, admin);
      assert.equal(r.code, status.OK, r.details);
      const reply = r.reply as { grants: { grant: { namespace: string } }[]; nextPageToken: string };
      seen.push(...reply.grants.map((g) => g.grant.namespace));
      pageToken = reply.nextPageToken;
    } while (pageToken !== "");
    assert.equal(seen.length, 64);
    assert.deepEqual(seen, [...seen].sort());
    const badPage = await a.call("ListGrants", { pageToken: "nonsense" }, admin);
    assert.equal(badPage.code, status.INVALID_ARGUMENT);
  });

  it("a namespace admin may grant within its namespace only", async () => {
    const demoAdmin = await createToken(a, admin, "demo-admin", [{ namespace: "demo", roles: ["admin"] }]);
    const inside = await a.call(
      "GrantRoles",
      { principal: "helper", grant: { namespace: "demo", prefix: "x/", roles: [ROLE.read] } },
      demoAdmin.token,
    );
    assert.equal(inside.code, status.OK, inside.details);
    for (const namespace of ["other", "demo*", "*"]) {
      const r = await a.call(
        "GrantRoles",
        { principal: "helper", grant: { namespace, roles: [ROLE.read] } },
        demoAdmin.token,
      );
      assert.equal(r.code, status.PERMISSION_DENIED, `${namespace}: ${r.details}`);
    }
    assert.equal((await a.call("ListGrants", {}, demoAdmin.token)).code, status.PERMISSION_DENIED);
  });
});
