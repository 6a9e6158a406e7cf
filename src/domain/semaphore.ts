/**
 * A counting semaphore with a FIFO of takers, for work that must never use
 * more than a bounded share of a shared resource (lock attempts and the
 * Postgres pool). A taker whose signal aborts while it waits leaves the line
 * without a permit.
 */
export class Semaphore {
  private free: number;
  private readonly line: { grant: () => void }[] = [];

  constructor(readonly permits: number) {
    this.free = permits;
  }

  /** Permits in use. */
  get inUse(): number {
    return this.permits - this.free;
  }

  /** Resolves with the permit's release (idempotent), or undefined when `signal` aborted first. */
  async take(signal: AbortSignal): Promise<(() => void) | undefined> {
    if (signal.aborted) return undefined;
    if (this.free > 0) {
      this.free--;
      return this.releaser();
    }
    const granted = await new Promise<boolean>((resolve) => {
      const entry = {
        grant: () => {
          signal.removeEventListener("abort", abort);
          resolve(true);
        },
      };
      const abort = () => {
        const i = this.line.indexOf(entry);
        if (i >= 0) this.line.splice(i, 1);
        resolve(false);
      };
      signal.addEventListener("abort", abort, { once: true });
      this.line.push(entry);
    });
    return granted ? this.releaser() : undefined;
  }

  private releaser(): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const next = this.line.shift();
      // The permit passes straight to the next in line, or back to the pool.
      if (next) next.grant();
      else this.free++;
    };
  }
}
