import * as assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { status } from "@grpc/grpc-js";
import { Client } from "pg";
import { Direction } from "../../src/gen/agentstate/v1/event";
import { createToken, JwtKeys, ROLE } from "../support/authFixture";
import { eventually } from "../support/eventually";
import { METHODS, RpcByName } from "../support/rpcByName";
import { ServerProcess } from "../support/ServerProcess";
import { getTestEnv } from "../support/TestEnv";

type RoleName = "read" | "write" | "lock" | "admin";

/** Each RPC: the role it needs and a valid request touching `key` (a prefix for List/Subscribe) in `ns`. */
const RPCS: Record<
  string,
  {
    role: RoleName;
    wholeNamespace?: boolean;
    /** The RPC a refusal names (a Session call is refused as the call it carries). */
    named?: string;
    req: (ns: string, key: string) => unknown;
  }
> = {
  Get: { role: "read", req: (namespace, key) => ({ namespace, key }) },
  List: { role: "read", req: (namespace, prefix) => ({ namespace, prefix }) },
  CompareAndSet: {
    role: "write",
    req: (namespace, key) => ({ namespace, key, expected: { any: true }, value: Buffer.from("changed") }),
  },
  Delete: { role: "write", req: (namespace, key) => ({ namespace, key, expected: { any: true } }) },
  Lock: { role: "lock", req: (namespace, name) => ({ namespace, name, ttl: { seconds: 30, nanos: 0 } }) },
  Unlock: { role: "lock", req: (namespace, name) => ({ namespace, name, lockId: "not-a-lock" }) },
  RenewLock: {
    role: "lock",
    req: (namespace, name) => ({ namespace, name, lockId: "not-a-lock", ttl: { seconds: 30, nanos: 0 } }),
  },
  AppendEvent: {
    role: "write",
    req: (namespace, stream) => ({
      namespace,
      stream,
      expected: { any: true },
      events: [{ id: "", type: "t", data: Buffer.from("e"), metadata: {} }],
    }),
  },
  ReadStream: {
    role: "read",
    req: (namespace, stream) => ({ namespace, stream, direction: Direction.DIRECTION_FORWARDS }),
  },
  Subscribe: { role: "read", req: (namespace, streamPrefix) => ({ namespace, streamPrefix }) },
  CreateToken: {
    role: "admin",
    req: (namespace, prefix) => ({ principal: "made", grants: [{ namespace, prefix, roles: [ROLE.read] }] }),
  },
  ListTokens: { role: "admin", req: () => ({}) },
  RevokeToken: { role: "admin", req: () => ({ id: "no-such-token" }) },
  // The audit trail: admin on the namespace, or on its keys and streams under key_prefix.
  ListChanges: { role: "admin", req: (namespace, keyPrefix) => ({ namespace, keyPrefix }) },
  GrantRoles: {
    role: "admin",
    req: (namespace, prefix) => ({ principal: "someone", grant: { namespace, prefix, roles: [ROLE.read] } }),
  },
  RevokeGrant: { role: "admin", req: (namespace, prefix) => ({ principal: "someone", namespace, prefix, roles: [] }) },
  ListGrants: { role: "admin", req: () => ({}) },
  // StoreService: `key` as the item's one path label ("allowed/k" -> scope "allowed/k.x", under the grant's "allowed/")
  PutItem: { role: "write", req: (namespace, label) => ({ namespace, path: [label], key: "x", valueJson: "{}" }) },
  GetItem: { role: "read", req: (namespace, label) => ({ namespace, path: [label], key: "x" }) },
  DeleteItem: { role: "write", req: (namespace, label) => ({ namespace, path: [label], key: "x" }) },
  SearchItems: { role: "read", req: (namespace, label) => ({ namespace, pathPrefix: [label], limit: 10 }) },
  ListPaths: { role: "read", req: (namespace, label) => ({ namespace, prefix: [label, "*"], limit: 10 }) },
  // CheckpointService: `key` as the thread id
  PutCheckpoint: { role: "write", req: (namespace, threadId) => ({ namespace, threadId }) },
  PutWrites: { role: "write", req: (namespace, threadId) => ({ namespace, threadId, checkpointId: "1", taskId: "t" }) },
  GetCheckpoint: { role: "read", req: (namespace, threadId) => ({ namespace, threadId }) },
  ListCheckpoints: { role: "read", req: (namespace, threadId) => ({ namespace, threadId, limit: 10 }) },
  DeleteThread: { role: "write", req: (namespace, threadId) => ({ namespace, threadId }) },
  CopyThread: {
    role: "write",
    req: (namespace, threadId) => ({ namespace, sourceThreadId: threadId, targetThreadId: `${threadId}-copy` }),
  },
  PruneCheckpoints: {
    role: "write",
    req: (namespace, threadId) => ({ namespace, threadIds: [threadId], keepLatest: 1 }),
  },
  // Across threads: only a grant on the whole namespace covers it (the prefix-limited tokens are refused).
  DeleteForRuns: { role: "write", wholeNamespace: true, req: (namespace) => ({ namespace, runIds: ["r1"] }) },
  // A Session stream carrying one PutCheckpoint: bad credentials end the stream at open, a missing
  // grant refuses the call (its SessionStatus), as PutCheckpoint.
  Session: {
    role: "write",
    named: "PutCheckpoint",
    req: (namespace, threadId) => ({ callId: 1, putCheckpoint: { namespace, threadId } }),
  },
};

const NS = "demo";
const IN = "allowed/k";
const OUT = "secret/k";

describe("security: the authorization matrix (every RPC x every kind of credential)", function () {
  this.timeout(180_000);
  let server: ServerProcess;
  let rpc: RpcByName;
  let jwt: JwtKeys;
  let db: Client;
  const bootstrap = `agst_${randomBytes(32).toString("base64url")}`;
  /** Credential per case name; a case's request may go elsewhere (other namespace, outside the prefix). */
  const creds: Record<string, string | undefined> = {};
  let missingRole: Record<RoleName, string>;

  /** Everything a denied call could have changed, in one row. */
  async function snapshot(): Promise<string> {
    const r = await db.query(
      `SELECT (SELECT count(*) FROM kv_history) h, (SELECT count(*) FROM kv) k, (SELECT count(*) FROM events) e,
              (SELECT count(*) FROM locks) l, (SELECT count(*) FROM fencing_tokens) f, (SELECT count(*) FROM auth_tokens) t,
              (SELECT count(*) FROM principal_grants) g,
              (SELECT coalesce(sum(revision), 0) FROM namespace_revisions) r,
              (SELECT string_agg(key || '=' || encode(value, 'escape'), ',' ORDER BY key) FROM kv) v`,
    );
    return JSON.stringify(r.rows[0]);
  }

  before(async () => {
    jwt = new JwtKeys();
    const env = await getTestEnv();
    const url = await env.freshDatabase("auth_matrix");
    server = await ServerProcess.start({
      DATABASE_URL: url,
      AGENTSTATE_AUTH: "required",
      AGENTSTATE_BOOTSTRAP_TOKEN: bootstrap,
      ...jwt.env(),
    });
    db = new Client({ connectionString: url });
    await db.connect();
    rpc = new RpcByName(server.address);
    const all: RoleName[] = ["read", "write", "lock"];
    const within = (roles: RoleName[]) => [{ namespace: NS, prefix: "allowed/", roles }];
    const rw = await createToken(rpc, bootstrap, "agent", within(all));
    const demoAdmin = await createToken(rpc, bootstrap, "demo-admin", [{ namespace: NS, roles: ["admin"] }]);
    const prefixAdmin = await createToken(rpc, bootstrap, "prefix-admin", within(["admin"]));
    const expired = await createToken(rpc, bootstrap, "short-lived", within(all), 1);
    const revoked = await createToken(rpc, bootstrap, "revoked", within(all));
    // Used once, so it is cached as valid before it is revoked.
    const used = await rpc.call("Get", { namespace: NS, key: IN }, revoked.token);
    assert.equal(used.code, status.OK, `${used.details}\n${server.tail(20)}`);
    assert.equal((await rpc.call("RevokeToken", { id: revoked.id }, bootstrap)).code, status.OK);
    missingRole = {
      read: (await createToken(rpc, bootstrap, "no-read", within(["write", "lock"]))).token,
      write: (await createToken(rpc, bootstrap, "no-write", within(["read", "lock"]))).token,
      lock: (await createToken(rpc, bootstrap, "no-lock", within(["read", "write"]))).token,
      admin: rw.token,
    };
    const grants = [{ namespace: NS, prefix: "allowed/", roles: all }];
    Object.assign(creds, {
      "no credentials": undefined,
      malformed: "!Basic dXNlcjpwYXNzd29yZA==",
      "unknown token": `agst_${randomBytes(32).toString("base64url")}`,
      expired: expired.token,
      revoked: revoked.token,
      "JWT wrong signature": await jwt.sign("agent", grants, { otherKey: true }),
      "JWT HS256 wrong secret": await jwt.sign("agent", grants, { alg: "HS256", otherKey: true }),
      "JWT expired": await jwt.sign("agent", grants, { expiresInS: -60 }),
      "JWT wrong audience": await jwt.sign("agent", grants, { audience: "someone-else" }),
      rw: rw.token,
      demoAdmin: demoAdmin.token,
      prefixAdmin: prefixAdmin.token,
      jwt: await jwt.sign("agent-jwt", grants),
      jwtHs: await jwt.sign("agent-jwt", grants, { alg: "HS256" }),
    });
    // Seed the two keys and streams (as the bootstrap admin) so denied writes would have something to change.
    for (const key of [IN, OUT]) {
      assert.equal((await rpc.call("CompareAndSet", RPCS.CompareAndSet!.req(NS, key), bootstrap)).code, status.OK);
      assert.equal((await rpc.call("AppendEvent", RPCS.AppendEvent!.req(NS, key), bootstrap)).code, status.OK);
    }
    // The 1 s token expires through the real path (checked on every call, cached or not): poll with a
    // read RPC other than Get, whose UNAUTHENTICATED count is asserted below, until it is refused.
    await eventually("the 1 s token to expire", async () => {
      const r = await rpc.call("ReadStream", RPCS.ReadStream!.req(NS, IN), expired.token);
      return r.code === status.UNAUTHENTICATED && r.details === "token expired";
    });
  });

  after(async () => {
    rpc?.close();
    await db?.end();
    await server?.stop();
    jwt?.remove();
  });

  /** The denied cases of `name`: [case, credential, namespace, key]. */
  function deniedCases(name: string): [string, string | undefined, string, string, status][] {
    const { role } = RPCS[name]!;
    const U = status.UNAUTHENTICATED;
    const P = status.PERMISSION_DENIED;
    const unauthenticated = [
      "no credentials",
      "malformed",
      "unknown token",
      "expired",
      "revoked",
      "JWT wrong signature",
      "JWT HS256 wrong secret",
      "JWT expired",
      "JWT wrong audience",
    ].map((c): [string, string | undefined, string, string, status] => [c, creds[c], NS, IN, U]);
    const admin = role === "admin";
    return [
      ...unauthenticated,
      ["other namespace", admin ? creds.demoAdmin : creds.rw, "other", admin ? "" : IN, P],
      ["prefix outside the grant", admin ? creds.prefixAdmin : creds.rw, NS, OUT, P],
      ["missing role", missingRole[role], NS, IN, P],
    ];
  }

  for (const name of Object.keys(RPCS)) {
    it(`${name}: every bad credential is UNAUTHENTICATED, every missing grant PERMISSION_DENIED, nothing changes`, async () => {
      const spec = RPCS[name]!;
      for (const [kase, cred, ns, key, want] of deniedCases(name)) {
        const before = await snapshot();
        const r = await rpc.call(name, spec.req(ns, key), cred);
        assert.equal(status[r.code], status[want], `${name} / ${kase}: ${r.details}`);
        assert.equal(await snapshot(), before, `${name} / ${kase} changed something`);
        assert.doesNotMatch(r.details, /agst_|eyJ/, "a credential in the error");
        if (want === status.PERMISSION_DENIED && spec.role !== "admin") {
          assert.match(r.details, new RegExp(`${spec.named ?? name} needs role "${spec.role}" on namespace "${ns}"`));
        }
      }
    });

    it(`${name}: the right role gets in (API token, ES256 JWT, HS256 JWT)`, async () => {
      const spec = RPCS[name]!;
      const rights = spec.role === "admin" || spec.wholeNamespace ? [bootstrap] : [creds.rw!, creds.jwt!, creds.jwtHs!];
      for (const cred of rights) {
        const r = await rpc.call(name, spec.req(NS, spec.role === "admin" ? "" : IN), cred);
        assert.ok(
          r.code !== status.UNAUTHENTICATED && r.code !== status.PERMISSION_DENIED,
          `${name}: ${status[r.code]} ${r.details}`,
        );
        if (["Get", "List", "CompareAndSet", "Lock", "AppendEvent", "ReadStream", "Subscribe"].includes(name)) {
          assert.equal(r.code, status.OK, `${name}: ${r.details}`);
        }
      }
    });
  }

  it("every RPC the server serves is in this matrix", () => {
    assert.deepEqual(Object.keys(RPCS).sort(), Object.keys(METHODS).sort());
  });

  it("denials are logged with principal, rpc, namespace and reason, and counted by code", async () => {
    await server.waitForLog((l) => l.msg === "call denied" && l.reason === "token revoked");
    const lines = server.logs().filter((l) => l.msg === "call denied");
    assert.ok(lines.some((l) => l.code === "PERMISSION_DENIED" && l.principal === "agent" && l.namespace === "other"));
    assert.ok(lines.some((l) => l.code === "UNAUTHENTICATED" && l.reason === "token revoked"));
    // Refused before authorization too, the line names the namespace the request did.
    assert.ok(lines.some((l) => l.code === "UNAUTHENTICATED" && l.rpc === "Get" && l.namespace === NS));
    const at = server.logs().find((l) => l.msg === "listening")!.metrics;
    const metrics = await (
      await fetch(`http://${at}/metrics`, { headers: { authorization: `Bearer ${bootstrap}` } })
    ).text();
    assert.match(metrics, /agentstate_auth_denied_total\{rpc="Get",code="UNAUTHENTICATED"\} 9/);
  });
});
