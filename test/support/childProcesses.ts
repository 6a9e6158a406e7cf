/**
 * What every process the harness starts (PostgresProcess, RedisProcess,
 * EtcdProcess, LoggedServerProcess through LoggedProcess; ServerProcess)
 * shares: how a child's exit is reported, the error for a child that died
 * while starting, and the synchronous clean-ups run when the test or bench
 * process exits (normally, on an uncaught error, or on SIGINT/SIGTERM/SIGHUP),
 * which SIGKILL any child still alive and remove its temp dir, so a crashed or
 * unfinished run leaves no orphans.
 */

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A child process that exited before it was ready (the message carries its log's tail). */
export class EarlyExitError extends Error {}

/** Keep the children's temp dirs after the run (AGENTSTATE_TEST_KEEP_TMP=1). */
export const KEEP_TMP = process.env.AGENTSTATE_TEST_KEEP_TMP === "1";

export const exitCleanups = new Set<() => void>();

/** Runs every registered clean-up now (SIGKILLs what is still running); the exit hooks call it too. */
export function runExitCleanups(): void {
  for (const fn of exitCleanups) {
    try {
      fn();
    } catch {
      // best effort
    }
  }
  exitCleanups.clear();
}
process.once("exit", runExitCleanups);
// 'exit' does not fire on a fatal signal: clean up, then re-raise it once no
// other listener is left (same pattern as mocha's own SIGINT handling).
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.once(sig, () => {
    runExitCleanups();
    if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
  });
}
