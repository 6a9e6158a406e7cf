/**
 * The auth step of the call pipeline (PipelineCall.ts), between the request
 * id and the handler, the same for unary and streaming calls:
 *   1. authentication: the `authorization: Bearer ...` metadata, or else the
 *      verified client certificate, becomes a Principal (the Authenticator;
 *      UNAUTHENTICATED otherwise);
 *   2. authorization: the RPC's line in ACCESS (access.ts) says which role it
 *      needs on which scopes of the request; a principal without it gets
 *      PERMISSION_DENIED before the handler runs, so nothing is written.
 * A refusal is logged (principal, rpc, namespace, reason; never a credential
 * or a value) and counted (`denied`).
 *
 * A client certificate's identity (CN, URI SANs) is read once per connection
 * and kept with its HTTP/2 session (peerSession.ts), in a WeakMap that lets it
 * go with the connection. That is sound because a connection's certificate
 * cannot change: HTTP/2 forbids TLS renegotiation and Node disables it on the
 * socket, and whether the handshake authorized the peer is fixed at the
 * handshake. A rotated client certificate comes on a new connection (a new
 * handshake), so a new session and a new entry. Only the identity is kept:
 * the principal it maps to and that principal's grants (stored grants
 * included) are looked up on every call.
 */
import type { PeerCertificate } from "node:tls";
import { Metadata } from "@grpc/grpc-js";
import { AppError, PermissionDeniedError, UnauthenticatedError } from "../../errors/errors";
import {
  allows,
  type Authenticator,
  type Credentials,
  type PeerIdentity,
  type Principal,
  type Scope,
} from "../../domain/principals";
import type { AuthCall, CallAuth, CallContext } from "../pipeline/context";
import { ACCESS } from "./access";
import { sessionOf } from "./peerSession";

const BEARER = /^Bearer +(\S+) *$/i;

/** A name from the request, quoted and cut short for a message. */
function quoted(s: string): string {
  return JSON.stringify(s.length > 64 ? `${s.slice(0, 64)}...` : s);
}

function peerIdentity(cert: PeerCertificate | undefined): PeerIdentity | undefined {
  if (!cert || !cert.subject) return undefined;
  const cn = cert.subject.CN as string | string[] | undefined;
  const uris = (cert.subjectaltname ?? "")
    .split(", ")
    .filter((s) => s.startsWith("URI:"))
    .map((s) => s.slice(4));
  return { cn: Array.isArray(cn) ? cn[0] : cn, uris };
}

/** Peer identities by HTTP/2 session (null: the connection proved none). */
type PeerCache = WeakMap<object, PeerIdentity | null>;

class CallCredentials implements Credentials {
  readonly bearer: string | undefined;

  constructor(
    private readonly call: AuthCall,
    private readonly peers?: PeerCache,
  ) {
    const values = call.metadata.get("authorization");
    if (values.length === 0) {
      this.bearer = undefined;
      return;
    }
    const m = values.length === 1 && typeof values[0] === "string" ? BEARER.exec(values[0]) : null;
    if (!m) throw new UnauthenticatedError('malformed authorization metadata: send one "Bearer <token>"');
    this.bearer = m[1]!;
  }

  peer(): PeerIdentity | undefined {
    const session = this.peers && sessionOf(this.call);
    if (session !== undefined) {
      const known = this.peers!.get(session);
      if (known !== undefined) return known ?? undefined;
    }
    const identity = peerIdentity(this.call.getAuthContext?.().sslPeerCertificate);
    if (session !== undefined) this.peers!.set(session, identity ?? null);
    return identity;
  }
}

export class AuthStep implements CallAuth {
  private readonly peers: PeerCache = new WeakMap();

  constructor(
    private readonly authenticator: Authenticator,
    private readonly denied?: (rpc: string, code: "UNAUTHENTICATED" | "PERMISSION_DENIED") => void,
  ) {}

  admit(rpc: string, call: AuthCall, req: unknown, ctx: Pick<CallContext, "log">): Principal | Promise<Principal> {
    let p: Principal | Promise<Principal>;
    try {
      p = this.authenticator.authenticate(new CallCredentials(call, this.peers));
    } catch (err) {
      throw this.refused(rpc, undefined, err, ctx, namespaceOf(rpc, req));
    }
    if (p instanceof Promise) {
      return p.then(
        (principal) => this.authorize(rpc, principal, req, ctx),
        (err: unknown) => {
          throw this.refused(rpc, undefined, err, ctx, namespaceOf(rpc, req));
        },
      );
    }
    return this.authorize(rpc, p, req, ctx);
  }

  /**
   * Authentication alone, for calls outside the pipeline (server reflection):
   * any principal that holds at least one grant.
   */
  async someGrant(call: AuthCall): Promise<Principal> {
    const p = await this.authenticator.authenticate(new CallCredentials(call, this.peers));
    if (p.grants.length === 0) throw new PermissionDeniedError(`principal ${quoted(p.name)} holds no grant`);
    return p;
  }

  /** For the HTTP listener (/metrics): whether `authorization` proves a principal with some grant. */
  async allowsHttp(authorization: string | undefined): Promise<boolean> {
    try {
      const metadata = new Metadata();
      if (authorization !== undefined) metadata.set("authorization", authorization);
      await this.someGrant({ metadata });
      return true;
    } catch (err) {
      if (err instanceof UnauthenticatedError || err instanceof PermissionDeniedError) return false;
      if (!(err instanceof AppError)) return false; // a header grpc-js refuses as metadata: no credential
      throw err;
    }
  }

  /** `req` undefined: the request did not decode; the handler answers INVALID_ARGUMENT to an authenticated caller. */
  private authorize(rpc: string, p: Principal, req: unknown, ctx: Pick<CallContext, "log">): Principal {
    if (req === undefined) return p;
    const access = ACCESS[rpc];
    if (access === undefined) {
      throw this.refused(
        rpc,
        p,
        new PermissionDeniedError(`${rpc} is open to no principal (it has no access rule)`),
        ctx,
      );
    }
    const scopes = access.scopes(req);
    if (allows(p, access.role, scopes)) return p;
    const s = scopes.find((one) => !allows(p, access.role, [one])) ?? scopes[0]!;
    throw this.refused(rpc, p, new PermissionDeniedError(deniedMessage(rpc, p, access.role, s)), ctx, s.namespace);
  }

  private refused(
    rpc: string,
    p: Principal | undefined,
    err: unknown,
    ctx: Pick<CallContext, "log">,
    namespace?: string,
  ): unknown {
    const code =
      err instanceof UnauthenticatedError
        ? "UNAUTHENTICATED"
        : err instanceof PermissionDeniedError
          ? "PERMISSION_DENIED"
          : undefined;
    if (code === undefined) return err; // a store failure looking a token up: the pipeline maps it
    ctx.log.warn("call denied", {
      code,
      principal: p?.name,
      namespace: namespace === undefined ? undefined : namespace.slice(0, 64),
      reason: (err as Error).message,
    });
    this.denied?.(rpc, code);
    return err;
  }
}

/** The namespace a request names, for the log line of a call refused before authorization (undefined: none). */
function namespaceOf(rpc: string, req: unknown): string | undefined {
  if (req === undefined) return undefined;
  try {
    const ns = ACCESS[rpc]?.scopes(req)[0]?.namespace;
    return ns === "*" ? undefined : ns;
  } catch {
    return undefined; // the log line goes without it; the refusal stands
  }
}

function deniedMessage(rpc: string, p: Principal, role: string, s: Scope): string {
  const what =
    s.key !== undefined ? ` for key ${quoted(s.key)}` : s.prefix !== undefined ? ` for prefix ${quoted(s.prefix)}` : "";
  return `principal ${quoted(p.name)}: ${rpc} needs role "${role}" on namespace ${quoted(s.namespace)}${what}`;
}
