/**
 * Waiters: promises that settle once a condition over what a source has
 * received (stream messages, log lines) holds. The owner calls notify()
 * whenever it receives something or the source ends.
 */
export class Waiters {
  private readonly checks = new Set<() => void>();

  /**
   * Resolves with the first value of `test()` other than undefined (tested at
   * once and on every notify()); rejects with `failed()`'s message once that is
   * set (the source ended first), or with `timedOut()`'s after `timeoutMs`.
   */
  until<T>(
    test: () => T | undefined,
    failed: () => string | undefined,
    timedOut: () => string,
    timeoutMs: number,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const settle = (fn: () => void) => {
        clearTimeout(timer);
        this.checks.delete(check);
        fn();
      };
      const timer = setTimeout(() => settle(() => reject(new Error(timedOut()))), timeoutMs);
      const check = () => {
        const value = test();
        if (value !== undefined) return settle(() => resolve(value));
        const why = failed();
        if (why !== undefined) settle(() => reject(new Error(why)));
      };
      this.checks.add(check);
      check();
    });
  }

  notify(): void {
    for (const check of [...this.checks]) check();
  }
}
