/**
 * Replica crashes caused by bugs already reported but not yet fixed (each with
 * an `it.skip` regression test carrying a `// BUG:` comment). A fault run lists
 * a crash matching one of these as known instead of failing on it, so the
 * safety checks (linearizability, fencing, events) stay meaningful and green
 * until the fix lands; any other crash fails the run. Remove an entry with its
 * fix. Empty now: the one crash found so far (a pooled pg client checked out
 * without an 'error' listener: a connection lost mid-transaction killed the
 * replica; signature /Emitted 'error' event on Client instance at:[\s\S]*pg\/lib\/client\.js/)
 * was fixed in 57b193d, with its regression test in
 * test/integration/faults.regressions.test.ts.
 */
export interface KnownCrash {
  /** Where the bug is described. */
  bug: string;
  /** Matches the tail of the crashed replica's output. */
  signature: RegExp;
}

export const KNOWN_CRASHES: readonly KnownCrash[] = [];

/**
 * Causes of INTERNAL replies (the `error` of the server's "internal error" log
 * line) from bugs already reported but not yet fixed. A run whose INTERNAL
 * replies are all explained by these lists them as known; any other INTERNAL
 * fails the run. Remove an entry with its fix.
 */
export interface KnownInternalError {
  bug: string;
  /** Matches "<rpc>: <error message>" of the log line. */
  signature: RegExp;
}

export const KNOWN_INTERNAL_ERRORS: readonly KnownInternalError[] = [
  // Empty now. The one cause found so far, SQLSTATE 25P03 (Postgres ending a transaction left
  // idle: /terminating connection due to idle-in-transaction timeout/) answered as INTERNAL,
  // was fixed in ff184b6 (src/store/postgres/pgErrors.ts), with its regression test in
  // test/integration/faults.regressions.test.ts.
];
