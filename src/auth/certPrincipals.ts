/**
 * Client certificates to principals (mTLS): AGENTSTATE_AUTH_CERT_PRINCIPALS_FILE,
 * a JSON list of `{"cn": "agent-1"}` or `{"uri": "spiffe://example.org/agent"}`
 * with `"principal"` and `"grants"`:
 *
 *   [{"uri": "spiffe://example.org/billing", "principal": "billing",
 *     "grants": [{"namespace": "billing", "roles": ["read", "write"]}]}]
 *
 * A URI SAN match wins over a CN match. A certificate that maps to nothing
 * proves no principal (UNAUTHENTICATED). Read at start.
 */
import { readFileSync } from "node:fs";
import { parseGrants, type PeerIdentity, type Principal } from "../domain/principals";

export class CertPrincipals {
  private constructor(
    private readonly byCn: ReadonlyMap<string, Principal>,
    private readonly byUri: ReadonlyMap<string, Principal>,
  ) {}

  /** Throws, naming the setting and the entry, on a malformed file. */
  static load(file: string): CertPrincipals {
    const setting = "AGENTSTATE_AUTH_CERT_PRINCIPALS_FILE";
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(file, "utf8"));
    } catch (err) {
      throw new Error(`${setting}: not readable JSON (${(err as Error).message})`);
    }
    if (!Array.isArray(raw)) throw new Error(`${setting}: must be a JSON list`);
    const byCn = new Map<string, Principal>();
    const byUri = new Map<string, Principal>();
    raw.forEach((e: Record<string, unknown>, i) => {
      const at = `${setting}[${i}]`;
      if (typeof e?.principal !== "string" || e.principal === "") throw new Error(`${at}.principal must be a name`);
      const principal: Principal = Object.freeze({
        name: e.principal,
        grants: parseGrants(e.grants, `${at}.grants`),
        via: "cert",
      });
      if (typeof e.uri === "string") byUri.set(e.uri, principal);
      else if (typeof e.cn === "string") byCn.set(e.cn, principal);
      else throw new Error(`${at} needs "cn" or "uri"`);
    });
    return new CertPrincipals(byCn, byUri);
  }

  principalOf(peer: PeerIdentity): Principal | undefined {
    for (const uri of peer.uris) {
      const p = this.byUri.get(uri);
      if (p) return p;
    }
    return peer.cn === undefined ? undefined : this.byCn.get(peer.cn);
  }
}
