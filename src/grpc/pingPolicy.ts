/**
 * Keepalive enforcement: a client may ping, but not flood. grpc-js answers
 * every PING and has no minimum interval of its own (C-core's
 * grpc.http2.min_ping_interval_without_data_ms and max_ping_strikes), so a
 * client pinging in a loop costs the server a frame and a callback per ping
 * forever. This is that policy for one HTTP/2 session: a PING that arrives
 * sooner than `minIntervalMs` after the previous one is a strike, one that
 * keeps the interval clears them, and so do a new call and every message the
 * server writes (a busy connection is not an abusive one). The writes matter:
 * grpc-go clients ping on receiving DATA to estimate the bandwidth-delay
 * product (BDP), so a client reading a Subscribe fan-out pings about once per
 * message; C-core and grpc-go servers reset their strikes on every frame they
 * send, and without that this server sent such clients away with
 * too_many_pings mid-stream. Past `maxStrikes` strikes the session is sent GOAWAY
 * ENHANCE_YOUR_CALM with "too_many_pings" (grpc-js, grpc-go and C-core clients
 * then double their keepalive time) and closed; what is still open on it is
 * cut after `graceMs`.
 */
import { constants } from "node:http2";
import type { EventEmitter } from "node:events";

export interface PingPolicy {
  /** 0: no minimum, every ping is fine. */
  readonly minIntervalMs: number;
  readonly maxStrikes: number;
}

/** What of a server's Http2Stream the policy uses: its message writes. */
export interface WrittenStream {
  write(...args: never[]): boolean;
}

/** What of an Http2Session the policy uses (a ServerHttp2Session is one). */
export interface PingedSession extends EventEmitter {
  readonly closed: boolean;
  readonly destroyed: boolean;
  goaway(code?: number, lastStreamID?: number, opaqueData?: NodeJS.ArrayBufferView): void;
  close(callback?: () => void): void;
  destroy(error?: Error, code?: number): void;
}

/** The GOAWAY debug data gRPC clients recognise. */
export const TOO_MANY_PINGS = "too_many_pings";

/**
 * Enforces `policy` on `session`; `onViolation` runs once, when the session is
 * sent away. `now` is for tests.
 */
export function enforcePingPolicy(
  session: PingedSession,
  policy: PingPolicy,
  onViolation: () => void,
  graceMs = 1000,
  now: () => number = () => performance.now(),
): void {
  if (policy.minIntervalMs <= 0) return;
  let last: number | undefined;
  let strikes = 0;
  let violated = false;
  const onPing = () => {
    const t = now();
    if (last !== undefined && t - last < policy.minIntervalMs) strikes++;
    else strikes = 0;
    last = t;
    if (strikes <= policy.maxStrikes || violated) return;
    violated = true;
    session.off("ping", onPing);
    onViolation();
    if (session.closed || session.destroyed) return;
    try {
      // 2^31-1: every stream already open may finish (within the grace).
      session.goaway(constants.NGHTTP2_ENHANCE_YOUR_CALM, 2 ** 31 - 1, Buffer.from(TOO_MANY_PINGS));
      session.close();
    } catch {
      session.destroy();
      return;
    }
    setTimeout(() => session.destroy(), graceMs).unref();
  };
  session.on("ping", onPing);
  session.on("stream", (stream: WrittenStream | undefined) => {
    strikes = 0;
    // grpc-js writes each response message with stream.write (and its headers and trailers with respond):
    // a message written clears the strikes, as data sent does in C-core and grpc-go.
    if (stream === undefined || typeof stream.write !== "function") return;
    const write = stream.write;
    stream.write = function (this: WrittenStream, ...args: never[]): boolean {
      strikes = 0;
      return write.apply(this, args);
    };
  });
}
