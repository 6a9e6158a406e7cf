/**
 * A pass that runs again a fixed time after the previous one settled (never
 * two at once, never a backlog): lease renewals, probes, the janitor.
 */
export class Repeat {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private stopped = false;

  /** `pass` must not reject (it logs its own failures); `everyMs`: the wait after each pass settles. */
  constructor(
    private readonly pass: () => Promise<unknown>,
    private readonly everyMs: number,
  ) {}

  /** The first pass now (in this turn), or `firstMs` from now. */
  start(firstMs?: number): void {
    if (firstMs === undefined) this.tick();
    else this.timer = setTimeout(() => this.tick(), firstMs).unref();
  }

  /** No pass starts after this; resolves once the one running (if any) has settled. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }

  private tick(): void {
    if (this.stopped) return;
    const running = this.pass().finally(() => {
      this.running = undefined;
      if (!this.stopped) this.timer = setTimeout(() => this.tick(), this.everyMs).unref();
    });
    this.running = running;
  }
}
