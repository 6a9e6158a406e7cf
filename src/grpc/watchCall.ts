/**
 * The signals of one call: `signal` aborts when the caller cancels or its
 * deadline passes (grpc-js reports a passed deadline as a cancellation; the
 * two are told apart here), with an AbortReason saying which.
 */
import type { Deadline } from "@grpc/grpc-js";
import { AbortReason } from "../errors/abort";

/** What is used of a grpc-js server call (unary or streaming). */
interface Call {
  getDeadline(): Deadline;
  on(event: "cancelled", listener: () => void): unknown;
  removeListener(event: "cancelled", listener: () => void): unknown;
}

export interface WatchedCall {
  signal: AbortSignal;
  /** The caller's deadline in ms since the epoch, if it set one. */
  deadline: number | undefined;
  dispose(): void;
}

export function watchCall(call: Call): WatchedCall {
  const ac = new AbortController();
  const dl = call.getDeadline();
  const deadline = dl instanceof Date ? dl.getTime() : Number.isFinite(dl) ? Number(dl) : undefined;
  const onCancel = () =>
    ac.abort(new AbortReason(deadline !== undefined && Date.now() >= deadline - 5 ? "deadline" : "cancelled"));
  call.on("cancelled", onCancel);
  const timer =
    deadline !== undefined
      ? setTimeout(() => ac.abort(new AbortReason("deadline")), Math.max(0, deadline - Date.now()))
      : undefined;
  return {
    signal: ac.signal,
    deadline,
    dispose() {
      if (timer) clearTimeout(timer);
      call.removeListener("cancelled", onCancel);
    },
  };
}
