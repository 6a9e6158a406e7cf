/**
 * Slots for long-lived streams (Subscribe, ReadStream): at most `perServer`
 * open at once on this server and at most `perNamespace` in one namespace.
 * Over a cap, acquire throws LimitExceededError naming the setting; streams
 * already open are not touched. The slot is released exactly once, by the
 * function acquire returns, whatever ended the stream.
 */
import { LimitExceededError } from "../errors/errors";

export interface StreamCaps {
  /** What the streams are, for messages: "Subscribe streams". */
  what: string;
  perServer: number;
  perServerSetting: string;
  perNamespace?: number;
  perNamespaceSetting?: string;
}

export class StreamSlots {
  private total = 0;
  private readonly byNamespace = new Map<string, number>();

  constructor(private readonly caps: StreamCaps) {}

  get open(): number {
    return this.total;
  }

  openIn(namespace: string): number {
    return this.byNamespace.get(namespace) ?? 0;
  }

  /** Takes a slot in `namespace`, or throws LimitExceededError; returns its release (idempotent). */
  acquire(namespace: string): () => void {
    const c = this.caps;
    if (this.total >= c.perServer) {
      throw new LimitExceededError(
        c.perServerSetting,
        `too many ${c.what} on this server: the limit is ${c.perServer} (${c.perServerSetting})`,
      );
    }
    const inNs = this.openIn(namespace);
    if (c.perNamespace !== undefined && inNs >= c.perNamespace) {
      const setting = c.perNamespaceSetting ?? "";
      throw new LimitExceededError(
        setting,
        `too many ${c.what} in namespace ${namespace}: the limit is ${c.perNamespace} (${setting})`,
      );
    }
    this.total++;
    this.byNamespace.set(namespace, inNs + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.total--;
      const n = (this.byNamespace.get(namespace) ?? 1) - 1;
      if (n === 0) this.byNamespace.delete(namespace);
      else this.byNamespace.set(namespace, n);
    };
  }
}
