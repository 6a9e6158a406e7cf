import type { PostgresProcess } from "./PostgresProcess";
import { childPids, killQuietly } from "./procfs";

/** Every process of a Postgres (postmaster and backends), for SIGSTOP/SIGCONT of the whole server. */
export function pgTree(pg: PostgresProcess): number[] {
  const out: number[] = [];
  const walk = (pid: number) => {
    out.push(pid);
    for (const c of childPids(pid)) walk(c);
  };
  if (pg.pid !== undefined) walk(pg.pid);
  return out;
}

/** Sends `signal` to each pid (gone ones are ignored). */
export function signalTree(pids: number[], signal: NodeJS.Signals): void {
  for (const p of pids) killQuietly(p, signal);
}
