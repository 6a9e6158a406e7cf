/**
 * How long a call lasts for its caller: `signal` aborts when the caller
 * cancels or its deadline passes (grpc-js reports a passed deadline as a
 * cancellation; the two are told apart here), with an AbortReason saying
 * which, and `gone()` says the same without making anything.
 *
 * The signal, its 'cancelled' listener and its deadline timer are made on
 * first use: most calls (a cache hit) finish without ever reading it, and an
 * AbortController plus a timer per call is measurable on that path. A signal
 * made after the call was already cancelled starts aborted. Work that only
 * needs to know at a few points whether the caller is still there (a write
 * about to be sent, the pipeline ending a call) asks `gone()` instead, which
 * allocates nothing while the caller waits.
 */
import type { Deadline } from "@grpc/grpc-js";
import { AbortReason, type CallerGone } from "../../errors/abort";

/** What is used of a grpc-js server call (unary or streaming). */
export interface LifetimeCall {
  /** Set by grpc-js when the call was cancelled (or its deadline passed). */
  readonly cancelled?: boolean;
  getDeadline(): Deadline;
  on(event: "cancelled", listener: () => void): unknown;
  removeListener(event: "cancelled", listener: () => void): unknown;
}

/** How close to its deadline a cancelled call counts as ended by the deadline (see cancelReason). */
export const DEADLINE_SLACK_MS = 250;

export class CallLifetime {
  /** The caller's deadline in ms since the epoch, if it set one. */
  readonly deadline: number | undefined;
  private ac: AbortController | undefined;
  private timer: NodeJS.Timeout | undefined;
  private onCancel: (() => void) | undefined;
  private disposed = false;

  constructor(private readonly call: LifetimeCall) {
    const dl = call.getDeadline();
    this.deadline = dl instanceof Date ? dl.getTime() : Number.isFinite(dl) ? Number(dl) : undefined;
  }

  /** Made on first read; see the module comment. */
  get signal(): AbortSignal {
    if (this.ac) return this.ac.signal;
    const ac = new AbortController();
    this.ac = ac;
    const { deadline } = this;
    if (this.call.cancelled) {
      ac.abort(this.cancelReason());
    } else if (deadline !== undefined && Date.now() >= deadline) {
      ac.abort(new AbortReason("deadline"));
    } else if (!this.disposed) {
      this.onCancel = () => ac.abort(this.cancelReason());
      this.call.on("cancelled", this.onCancel);
      if (deadline !== undefined) {
        this.timer = setTimeout(() => ac.abort(new AbortReason("deadline")), Math.max(0, deadline - Date.now()));
      }
    }
    return ac.signal;
  }

  /**
   * Why the call is over (cancelled, deadline passed), or undefined while the
   * caller waits. A bound function: stores are handed it on its own.
   */
  readonly gone: CallerGone = () => {
    if (this.ac?.signal.aborted) return this.ac.signal.reason as AbortReason;
    if (this.call.cancelled) return this.cancelReason();
    if (this.deadline !== undefined && Date.now() >= this.deadline) return new AbortReason("deadline");
    return undefined;
  };

  dispose(): void {
    this.disposed = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.onCancel) this.call.removeListener("cancelled", this.onCancel);
  }

  /**
   * A client whose deadline passes cancels the stream exactly as an explicit
   * cancel does (RST_STREAM CANCEL), so the two are told apart by time. The
   * server's deadline is the client's timeout counted from when the server
   * read the request, later than the client's own by the time the request
   * took to arrive and be read (tens of ms on a loaded machine), so a cancel
   * that close to the deadline is the deadline.
   */
  private cancelReason(): AbortReason {
    const nearDeadline = this.deadline !== undefined && Date.now() >= this.deadline - DEADLINE_SLACK_MS;
    return new AbortReason(nearDeadline ? "deadline" : "cancelled");
  }
}
