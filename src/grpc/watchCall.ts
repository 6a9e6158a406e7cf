/**
 * The signals of one call: `signal` aborts when the caller cancels or its
 * deadline passes (grpc-js reports a passed deadline as a cancellation; the
 * two are told apart here), with an AbortReason saying which.
 *
 * The signal, its 'cancelled' listener and its deadline timer are made on
 * first use: most calls (a cache hit) finish without ever reading it, and an
 * AbortController plus a timer per call is measurable on that path. A signal
 * made after the call was already cancelled starts aborted. Work that only
 * needs to know at a few points whether the caller is still there (a write
 * about to be sent) asks `gone()` instead, which makes nothing.
 */
import type { Deadline } from "@grpc/grpc-js";
import { AbortReason, type CallerGone } from "../errors/abort";

/** What is used of a grpc-js server call (unary or streaming). */
interface Call {
  /** Set by grpc-js when the call was cancelled (or its deadline passed). */
  readonly cancelled?: boolean;
  getDeadline(): Deadline;
  on(event: "cancelled", listener: () => void): unknown;
  removeListener(event: "cancelled", listener: () => void): unknown;
}

export interface WatchedCall {
  /** Made on first read; see the module comment. */
  readonly signal: AbortSignal;
  /** Why the call is over (cancelled, deadline passed), or undefined while the caller waits. */
  readonly gone: CallerGone;
  /** The caller's deadline in ms since the epoch, if it set one. */
  readonly deadline: number | undefined;
  dispose(): void;
}

export function watchCall(call: Call): WatchedCall {
  const dl = call.getDeadline();
  const deadline = dl instanceof Date ? dl.getTime() : Number.isFinite(dl) ? Number(dl) : undefined;
  let ac: AbortController | undefined;
  let timer: NodeJS.Timeout | undefined;
  let disposed = false;
  const cancelReason = () =>
    new AbortReason(deadline !== undefined && Date.now() >= deadline - 5 ? "deadline" : "cancelled");
  const onCancel = () => ac?.abort(cancelReason());
  return {
    get signal(): AbortSignal {
      if (ac) return ac.signal;
      const c = new AbortController();
      ac = c;
      if (call.cancelled) {
        onCancel();
      } else if (deadline !== undefined && Date.now() >= deadline) {
        c.abort(new AbortReason("deadline"));
      } else if (!disposed) {
        call.on("cancelled", onCancel);
        if (deadline !== undefined) {
          timer = setTimeout(() => c.abort(new AbortReason("deadline")), Math.max(0, deadline - Date.now()));
        }
      }
      return c.signal;
    },
    gone(): AbortReason | undefined {
      if (ac?.signal.aborted) return ac.signal.reason as AbortReason;
      if (call.cancelled) return cancelReason();
      if (deadline !== undefined && Date.now() >= deadline) return new AbortReason("deadline");
      return undefined;
    },
    deadline,
    dispose() {
      disposed = true;
      if (timer) clearTimeout(timer);
      if (ac) call.removeListener("cancelled", onCancel);
    },
  };
}
