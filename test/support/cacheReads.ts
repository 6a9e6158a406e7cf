import type { ServerProcess } from "./ServerProcess";
import { serverMetrics } from "./serverMetrics";

export interface CacheReadCounts {
  hits: number;
  misses: number;
  bypasses: number;
  fills: number;
  unleased: number;
  errors: number;
}

/**
 * A server's `agentstate_cache_reads_total` counters by outcome (hits, misses,
 * bypasses, fills, unleased, errors; absent outcomes read 0), scraped from the
 * /metrics endpoint named in its "listening" log line. The counters are
 * process-wide: compare readings taken before and after the reads of interest.
 */
export async function cacheReads(server: ServerProcess): Promise<CacheReadCounts> {
  const text = await serverMetrics(server);
  const counts: CacheReadCounts = { hits: 0, misses: 0, bypasses: 0, fills: 0, unleased: 0, errors: 0 };
  for (const m of text.matchAll(/^agentstate_cache_reads_total\{outcome="([a-z]+)"\} (\d+)$/gm)) {
    const outcome = m[1] as keyof CacheReadCounts;
    if (outcome in counts) counts[outcome] = Number(m[2]);
  }
  return counts;
}
