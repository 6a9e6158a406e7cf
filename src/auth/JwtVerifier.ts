/**
 * JWTs (jose): verified against the keys of AGENTSTATE_JWT_KEYS_FILE, a JWKS
 * (`{"keys": [...]}`: RS256/ES256 public keys, or `oct` keys for HS256) or
 * PEM public keys (SPKI, one or more blocks), with the configured issuer and
 * audience. The principal is the `sub` claim; its grants are the claim
 * AGENTSTATE_JWT_GRANTS_CLAIM (default `agentstate_grants`), a list of
 * `{namespace, prefix?, roles}`. `exp` is required.
 */
import { createPublicKey, createSecretKey, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import { errors as joseErrors, importJWK, jwtVerify, type JWK, type JWTPayload, type KeyLike } from "jose";
import { InvalidArgumentError, UnauthenticatedError } from "../errors/errors";
import { parseGrants, type Principal } from "../domain/principals";

export interface JwtSettings {
  keysFile: string;
  issuer: string | undefined;
  audience: string;
  grantsClaim: string;
}

const ALGORITHMS = ["HS256", "RS256", "ES256"];

interface Keyed {
  kid: string | undefined;
  alg: string | undefined;
  key: KeyLike | Uint8Array;
}

async function loadKeys(file: string): Promise<Keyed[]> {
  const text = readFileSync(file, "utf8");
  if (text.trimStart().startsWith("{")) {
    const jwks = JSON.parse(text) as { keys?: JWK[] };
    if (!Array.isArray(jwks.keys) || jwks.keys.length === 0) throw new Error("a JWKS needs a non-empty `keys` list");
    return Promise.all(
      jwks.keys.map(async (jwk) => {
        const alg = jwk.alg ?? (jwk.kty === "oct" ? "HS256" : jwk.kty === "EC" ? "ES256" : "RS256");
        if (jwk.kty === "oct") {
          const secret = Buffer.from(jwk.k ?? "", "base64url");
          if (secret.length < 32) throw new Error("an HS256 key must be at least 32 bytes");
          return { kid: jwk.kid, alg, key: createSecretKey(secret) as KeyObject };
        }
        return { kid: jwk.kid, alg, key: await importJWK(jwk, alg) };
      }),
    );
  }
  const blocks = text.match(/-----BEGIN PUBLIC KEY-----[\s\S]+?-----END PUBLIC KEY-----/g) ?? [];
  if (blocks.length === 0) throw new Error("no PEM public key (-----BEGIN PUBLIC KEY-----) and not a JWKS");
  return blocks.map((pem) => ({ kid: undefined, alg: undefined, key: createPublicKey(pem) }));
}

export class JwtVerifier {
  private constructor(
    private readonly keys: Keyed[],
    private readonly settings: JwtSettings,
  ) {}

  /** Reads the keys file; throws (naming the setting) if it holds no usable key. */
  static async load(settings: JwtSettings): Promise<JwtVerifier> {
    try {
      return new JwtVerifier(await loadKeys(settings.keysFile), settings);
    } catch (err) {
      throw new Error(`AGENTSTATE_JWT_KEYS_FILE: ${(err as Error).message}`);
    }
  }

  /** The principal `jwt` proves, and when the proof ends (ms since the epoch). */
  async verify(jwt: string): Promise<{ principal: Principal; expiresAt: number }> {
    let payload: JWTPayload | undefined;
    let last: unknown;
    for (const k of this.keys) {
      try {
        ({ payload } = await jwtVerify(jwt, k.key, {
          algorithms: k.alg ? [k.alg] : ALGORITHMS,
          issuer: this.settings.issuer,
          audience: this.settings.audience,
          requiredClaims: ["exp", "sub"],
        }));
        break;
      } catch (err) {
        last = err;
        // Another key may verify it; a claim failure holds for every key.
        if (
          !(err instanceof joseErrors.JWSSignatureVerificationFailed) &&
          !(err instanceof joseErrors.JOSEAlgNotAllowed)
        ) {
          break;
        }
      }
    }
    if (payload === undefined) throw new UnauthenticatedError(`JWT rejected: ${reasonOf(last)}`);
    let grants;
    try {
      grants = parseGrants(payload[this.settings.grantsClaim], `JWT claim ${this.settings.grantsClaim}`);
    } catch (err) {
      if (err instanceof InvalidArgumentError) throw new UnauthenticatedError(`JWT rejected: ${err.message}`);
      throw err;
    }
    return { principal: { name: String(payload.sub), grants, via: "jwt" }, expiresAt: payload.exp! * 1000 };
  }
}

/** Why jose refused, in words that name no part of the token. */
function reasonOf(err: unknown): string {
  if (err instanceof joseErrors.JWTExpired) return "expired";
  if (err instanceof joseErrors.JWTClaimValidationFailed) return `claim "${err.claim}" ${err.reason}`;
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return "signature does not verify";
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return "algorithm not allowed";
  return "malformed";
}
