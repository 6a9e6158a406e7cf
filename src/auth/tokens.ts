/**
 * API token texts: `agst_` and 43 base64url characters (256 random bits), so
 * a leaked token is recognisable by secret scanners. Only the sha256 of the
 * text is stored; the id (16 hex characters) names the token in lists,
 * revocation and logs.
 */
import { createHash, randomBytes } from "node:crypto";

export const TOKEN_PREFIX = "agst_";

/** What the authorization header may carry as an opaque token (the bootstrap token may be any such text). */
export const OPAQUE_TOKEN = /^[A-Za-z0-9._~+/=-]{32,512}$/;

/** A compact JWS: three base64url parts, the header a JSON object. */
export function looksLikeJwt(s: string): boolean {
  return s.startsWith("eyJ") && /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(s);
}

export function hashToken(text: string): Buffer {
  return createHash("sha256").update(text).digest();
}

export function newToken(): { id: string; text: string; hash: Buffer } {
  const text = TOKEN_PREFIX + randomBytes(32).toString("base64url");
  return { id: randomBytes(8).toString("hex"), text, hash: hashToken(text) };
}
