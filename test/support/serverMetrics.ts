import type { ServerProcess } from "./ServerProcess";

/** A server's Prometheus text from the /metrics endpoint named in its "listening" log line. */
export async function serverMetrics(server: ServerProcess): Promise<string> {
  const listening = server.logs().find((l) => l["msg"] === "listening");
  const address = listening?.["metrics"];
  if (typeof address !== "string")
    throw new Error("the server logged no metrics address (AGENTSTATE_METRICS_PORT=-1?)");
  const res = await fetch(`http://${address}/metrics`, { signal: AbortSignal.timeout(10_000) });
  if (!res.ok) throw new Error(`GET /metrics: HTTP ${res.status}`);
  return res.text();
}
