import type { PostgresProcess } from "./PostgresProcess";
import { descendantPids, killQuietly } from "./procfs";

/** Every process of a Postgres (postmaster and backends), for SIGSTOP/SIGCONT of the whole server. */
export function pgTree(pg: PostgresProcess): number[] {
  return pg.pid === undefined ? [] : [pg.pid, ...descendantPids(pg.pid)];
}

/** Sends `signal` to each pid (gone ones are ignored). */
export function signalTree(pids: number[], signal: NodeJS.Signals): void {
  for (const p of pids) killQuietly(p, signal);
}
