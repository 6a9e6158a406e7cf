import { generateKeyPairSync, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { SignJWT, type JWK } from "jose";
import { Role } from "../../src/gen/agentstate/v1/admin";
import type { RpcByName } from "./rpcByName";

export const JWT_AUDIENCE = "agentstate-test";
export const JWT_ISSUER = "https://issuer.test";

/** JWT signing keys for tests: an HS256 secret and an ES256 pair, written as a JWKS file the server reads. */
export class JwtKeys {
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), "agentstate-jwt-"));
  readonly file = path.join(this.dir, "jwks.json");
  readonly secret = randomBytes(32);
  private readonly ec = generateKeyPairSync("ec", { namedCurve: "P-256" });

  constructor() {
    const ecJwk = this.ec.publicKey.export({ format: "jwk" }) as JWK;
    const jwks = {
      keys: [
        { kty: "oct", k: this.secret.toString("base64url"), alg: "HS256", kid: "hs" },
        { ...ecJwk, alg: "ES256", kid: "ec" },
      ],
    };
    fs.writeFileSync(this.file, JSON.stringify(jwks));
  }

  /** A JWT for `sub` with `grants`; `opts` bends it (expired, other audience, signed with another key). */
  async sign(
    sub: string,
    grants: unknown,
    opts: { alg?: "HS256" | "ES256"; expiresInS?: number; audience?: string; otherKey?: boolean } = {},
  ): Promise<string> {
    const alg = opts.alg ?? "ES256";
    const now = Math.floor(Date.now() / 1000);
    const jwt = new SignJWT({ agentstate_grants: grants })
      .setProtectedHeader({ alg, kid: alg === "HS256" ? "hs" : "ec" })
      .setSubject(sub)
      .setIssuer(JWT_ISSUER)
      .setAudience(opts.audience ?? JWT_AUDIENCE)
      .setIssuedAt(now - 120)
      .setExpirationTime(now + (opts.expiresInS ?? 600));
    if (alg === "HS256") return jwt.sign(opts.otherKey ? randomBytes(32) : this.secret);
    return jwt.sign(opts.otherKey ? generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey : this.ec.privateKey);
  }

  env(): Record<string, string> {
    return {
      AGENTSTATE_JWT_KEYS_FILE: this.file,
      AGENTSTATE_JWT_AUDIENCE: JWT_AUDIENCE,
      AGENTSTATE_JWT_ISSUER: JWT_ISSUER,
    };
  }

  remove(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

export const ROLE = { read: Role.ROLE_READ, write: Role.ROLE_WRITE, lock: Role.ROLE_LOCK, admin: Role.ROLE_ADMIN };

/** A token made through AdminService with `admin`'s token; resolves with its text and id. */
export async function createToken(
  rpc: RpcByName,
  admin: string,
  principal: string,
  grants: { namespace: string; prefix?: string; roles: (keyof typeof ROLE)[] }[],
  ttlSeconds?: number,
): Promise<{ token: string; id: string }> {
  const r = await rpc.call(
    "CreateToken",
    {
      principal,
      grants: grants.map((g) => ({
        namespace: g.namespace,
        prefix: g.prefix ?? "",
        roles: g.roles.map((x) => ROLE[x]),
      })),
      ttl: ttlSeconds === undefined ? undefined : { seconds: ttlSeconds, nanos: 0 },
    },
    admin,
  );
  if (r.code !== 0) throw new Error(`CreateToken failed: ${r.code} ${r.details}`);
  return r.reply as { token: string; id: string };
}
