/**
 * What a handler gets with its request (CallContext, StreamContext) and what
 * the pipeline needs from the server (CallEnv).
 */
import type { Metadata } from "@grpc/grpc-js";
import type { PeerCertificate } from "node:tls";
import type { Principal } from "../../domain/principals";
import type { WriteOptions } from "../../domain/types";
import type { CallerGone } from "../../errors/abort";
import type { Logger } from "../../log/Logger";

export interface CallContext {
  readonly requestId: string;
  /** Who the call acts for; undefined when auth is off (AGENTSTATE_AUTH=off). */
  readonly principal: Principal | undefined;
  /** A logger for this call (request_id and rpc on every line), made on first use. */
  readonly log: Logger;
  /** Aborted when the caller cancels or the deadline passes: work for this call should stop. Made on first use. */
  readonly signal: AbortSignal;
  /** Why the call is over (cancelled, deadline passed), or undefined: cheaper than `signal` where a check will do. */
  readonly gone: CallerGone;
  /**
   * Aborted when the server starts shutting down. Only long waits follow it
   * (through `longWaitSignal`); ordinary calls drain.
   */
  readonly shutdown: AbortSignal;
  /**
   * `signal`, or `shutdown` when that comes first (reason "shutdown"): for
   * long waits (lock waits, subscriptions), which shutdown ends with
   * UNAVAILABLE instead of waiting for them to drain. Made on first use.
   */
  readonly longWaitSignal: AbortSignal;
  /** The call's deadline in ms since the epoch, if the caller set one. */
  readonly deadline: number | undefined;
}

export interface StreamContext<Res> extends CallContext {
  /**
   * Writes one message; resolves when the transport can take more, so a slow
   * reader paces the handler. Rejects once the caller is gone, the server
   * shuts down, or the reader has stalled too long (RESOURCE_EXHAUSTED).
   */
  send(msg: Res): Promise<void>;
  /**
   * The same, without a promise when none is needed: undefined once the
   * message is written and the transport can take more, else what `send`
   * would have returned.
   */
  sendNow(msg: Res): Promise<void> | undefined;
}

/** What every call needs from the server. */
export interface CallEnv {
  log: Logger;
  /** Aborted when the server starts shutting down. */
  shutdown: AbortSignal;
  /** Told about every finished call (metrics). */
  observe?: (rpc: string, code: string, seconds: number) => void;
  /** The auth step (AGENTSTATE_AUTH=required); unset: every call is let through. */
  auth?: CallAuth | undefined;
}

/** What the auth step reads of a grpc-js call. */
export interface AuthCall {
  readonly metadata: Metadata;
  getAuthContext?(): { sslPeerCertificate?: PeerCertificate };
}

/**
 * The auth step (grpc/auth/AuthStep.ts): the call's principal, or a throw
 * (UnauthenticatedError, PermissionDeniedError). `req` is the decoded
 * request, undefined when it did not decode (authentication only).
 */
export interface CallAuth {
  admit(rpc: string, call: AuthCall, req: unknown, ctx: Pick<CallContext, "log">): Principal | Promise<Principal>;
}

/**
 * What a write knows of its call: whether its caller has gone, its deadline,
 * and who it is made for (the audit trail records the principal, "" with auth
 * off, and the request id with the change).
 */
export function writeOptions(ctx: CallContext): WriteOptions {
  return {
    gone: ctx.gone,
    deadline: ctx.deadline,
    actor: { principal: ctx.principal?.name ?? "", requestId: ctx.requestId },
  };
}
