import type { ServerProcess } from "./ServerProcess";
import { serverMetrics } from "./serverMetrics";

/** A server histogram's observation count and sum so far (0 and 0 before its first observation). */
export async function histogramStats(server: ServerProcess, name: string): Promise<{ count: number; sum: number }> {
  const body = await serverMetrics(server);
  const value = (series: string) => Number(new RegExp(`^${series} (\\S+)$`, "m").exec(body)?.[1] ?? "0");
  return { count: value(`${name}_count`), sum: value(`${name}_sum`) };
}
