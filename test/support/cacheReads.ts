import type { ServerProcess } from "./ServerProcess";
import { serverMetrics } from "./serverMetrics";

export interface CacheReadCounts {
  hit: number;
  miss: number;
  bypass: number;
  fill: number;
  unleased: number;
  error: number;
}

/**
 * A server's `agentstate_cache_reads_total` counters by outcome (hit, miss,
 * bypass, fill, unleased, error; absent outcomes read 0), scraped from the
 * /metrics endpoint named in its "listening" log line. The counters are
 * process-wide: compare readings taken before and after the reads of interest.
 */
export async function cacheReads(server: ServerProcess): Promise<CacheReadCounts> {
  const text = await serverMetrics(server);
  const counts: CacheReadCounts = { hit: 0, miss: 0, bypass: 0, fill: 0, unleased: 0, error: 0 };
  for (const m of text.matchAll(/^agentstate_cache_reads_total\{outcome="([a-z_]+)"\} (\d+)$/gm)) {
    const outcome = m[1] as keyof CacheReadCounts;
    if (outcome in counts) counts[outcome] = Number(m[2]);
  }
  return counts;
}
