import * as assert from "node:assert/strict";
import { CredentialAuthenticator, UNLISTENED_CACHE_MS } from "../../src/auth/CredentialAuthenticator";
import { hashToken } from "../../src/auth/tokens";
import type { CertPrincipals } from "../../src/auth/certPrincipals";
import type { GrantStore, PrincipalGrant } from "../../src/domain/grants";
import type { Credentials, Grant, Principal } from "../../src/domain/principals";
import type { NewToken, TokenRecord, TokenStore } from "../../src/domain/tokens";
import { UnauthenticatedError } from "../../src/errors/errors";

/** An in-memory TokenStore that counts lookups and can hold one back. */
class MemoryTokens implements TokenStore {
  readonly rows = new Map<string, TokenRecord>();
  lookups = 0;
  hold: Promise<void> | undefined;

  add(text: string, t: Partial<TokenRecord> = {}): void {
    this.rows.set(hashToken(text).toString("hex"), {
      id: text.slice(-6),
      principal: "p",
      grants: [{ namespace: "demo", prefix: "", roles: ["read"] }],
      createdAt: new Date(),
      expiresAt: undefined,
      revokedAt: undefined,
      ...t,
    });
  }
  async findByHash(hash: Buffer): Promise<TokenRecord | undefined> {
    this.lookups++;
    const row = this.rows.get(hash.toString("hex"));
    await this.hold;
    return row;
  }
  create(_t: NewToken): Promise<TokenRecord> {
    throw new Error("unused");
  }
  list(): Promise<TokenRecord[]> {
    throw new Error("unused");
  }
  revoke(): Promise<boolean> {
    throw new Error("unused");
  }
  bootstrap(): Promise<boolean> {
    throw new Error("unused");
  }
}

const bearer = (b: string | undefined): Credentials => ({ bearer: b, peer: () => undefined });
const TOKEN = `agst_${"a".repeat(37)}abcdef`;

async function principal(a: CredentialAuthenticator, b: string): Promise<Principal> {
  return a.authenticate(bearer(b));
}

describe("CredentialAuthenticator: the cache of verified tokens", () => {
  let tokens: MemoryTokens;
  let auth: CredentialAuthenticator;

  beforeEach(() => {
    tokens = new MemoryTokens();
    tokens.add(TOKEN);
    auth = new CredentialAuthenticator({ tokens, jwt: undefined, certs: undefined, cacheMs: 60_000 });
    auth.reset(true); // the notification connection is up
  });

  it("a known token is answered from the cache, synchronously, after one lookup", async () => {
    assert.equal((await principal(auth, TOKEN)).name, "p");
    const again = auth.authenticate(bearer(TOKEN));
    assert.ok(!(again instanceof Promise));
    assert.equal(tokens.lookups, 1);
  });

  it("a revocation notice (changed) makes the next call read the store again, which refuses it", async () => {
    await principal(auth, TOKEN);
    tokens.add(TOKEN, { revokedAt: new Date() });
    auth.changed(TOKEN.slice(-6));
    await assert.rejects(principal(auth, TOKEN), /token revoked/);
    assert.equal(tokens.lookups, 2);
  });

  it("a lookup in flight when a notice arrives is answered but not cached", async () => {
    let release!: () => void;
    tokens.hold = new Promise((r) => (release = r));
    const pending = principal(auth, TOKEN);
    auth.changed("someone-else");
    release();
    await pending;
    tokens.hold = undefined;
    await principal(auth, TOKEN);
    assert.equal(tokens.lookups, 2);
  });

  it("while notices may be missed (reset(false)), a token is trusted for UNLISTENED_CACHE_MS only", async () => {
    auth.reset(false);
    await principal(auth, TOKEN);
    await principal(auth, TOKEN);
    assert.equal(tokens.lookups, 1);
    await new Promise((r) => setTimeout(r, UNLISTENED_CACHE_MS + 50));
    await principal(auth, TOKEN);
    assert.equal(tokens.lookups, 2);
  });

  it("expiry is checked on every call, cached or not", async () => {
    const soon = `agst_${"b".repeat(37)}expire`;
    tokens.add(soon, { expiresAt: new Date(Date.now() + 100) });
    await principal(auth, soon);
    await new Promise((r) => setTimeout(r, 150));
    await assert.rejects(principal(auth, soon), /token expired/);
  });

  it("no, malformed and unknown credentials are UNAUTHENTICATED, JWTs without keys too", async () => {
    for (const [b, why] of [
      [undefined, /no credentials/],
      ["short", /malformed token/],
      [`agst_${"c".repeat(43)}`, /unknown token/],
      ["eyJhbGciOiJIUzI1NiJ9.e30.x", /JWTs are not accepted/],
    ] as const) {
      await assert.rejects(
        (async () => auth.authenticate(bearer(b)))(),
        (e: unknown) => e instanceof UnauthenticatedError && why.test((e as Error).message),
      );
    }
  });
});

/** An in-memory GrantStore (find only) that counts reads. */
class MemoryGrants implements GrantStore {
  readonly byName = new Map<string, Grant[]>();
  reads = 0;
  find(principal: string): Promise<Grant[]> {
    this.reads++;
    return Promise.resolve(this.byName.get(principal) ?? []);
  }
  add(): Promise<undefined> {
    throw new Error("unused");
  }
  revoke(): Promise<false> {
    throw new Error("unused");
  }
  list(): Promise<PrincipalGrant[]> {
    throw new Error("unused");
  }
}

describe("CredentialAuthenticator: grants stored for named principals", () => {
  const fromFile: Principal = { name: "agent-one", grants: [], via: "cert" };
  const cert: Credentials = { bearer: undefined, peer: () => ({ cn: "agent-1", uris: [] }) };
  const certs = { principalOf: () => fromFile } as unknown as CertPrincipals;
  const demoRead: Grant = { namespace: "demo", prefix: "", roles: ["read"] };
  let tokens: MemoryTokens;
  let grants: MemoryGrants;
  let auth: CredentialAuthenticator;

  beforeEach(() => {
    tokens = new MemoryTokens();
    grants = new MemoryGrants();
    auth = new CredentialAuthenticator({ tokens, grants, jwt: undefined, certs, cacheMs: 60_000 });
    auth.reset(true);
  });

  it("a certificate principal holds its stored grants too, read once and then answered synchronously", async () => {
    grants.byName.set("agent-one", [demoRead]);
    assert.deepEqual((await auth.authenticate(cert)).grants, [demoRead]);
    const again = auth.authenticate(cert);
    assert.ok(!(again instanceof Promise));
    assert.deepEqual(again.grants, [demoRead]);
    assert.equal(grants.reads, 1);
  });

  it("a change notice (grantsChanged) makes the next call read them again", async () => {
    assert.deepEqual((await auth.authenticate(cert)).grants, []);
    grants.byName.set("agent-one", [demoRead]);
    assert.deepEqual((await auth.authenticate(cert)).grants, [], "cached");
    auth.grantsChanged("agent-one");
    assert.deepEqual((await auth.authenticate(cert)).grants, [demoRead]);
  });

  it("an API token never takes the stored grants of its principal's name", async () => {
    tokens.add(TOKEN);
    grants.byName.set("p", [{ namespace: "*", prefix: "", roles: ["admin"] }]);
    const p = await principal(auth, TOKEN);
    assert.deepEqual(p.grants, [{ namespace: "demo", prefix: "", roles: ["read"] }]);
    assert.equal(grants.reads, 0);
  });
});
