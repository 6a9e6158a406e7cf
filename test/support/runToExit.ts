import { execFile } from "node:child_process";
import { resolve } from "node:path";

/** The compiled server entry and the health-check entry (dist/src/...). */
export const SERVER_MAIN = resolve(__dirname, "../../src/main.js");
export const HEALTHCHECK = resolve(__dirname, "../../src/healthcheck.js");

export interface Exited {
  /** The exit code (null: killed by a signal or the timeout). */
  code: number | null;
  stdout: string;
  stderr: string;
  /** stdout then stderr. */
  output: string;
  /** The JSON log lines of the output, parsed. */
  lines: Record<string, unknown>[];
  ms: number;
}

/**
 * Runs a compiled entry (a server expected to give up, a health check) with
 * only PATH from this process's environment plus `env`, and resolves when it
 * has exited (or after `timeoutMs`, killed).
 */
export function runToExit(script: string, env: Record<string, string>, timeoutMs = 60_000): Promise<Exited> {
  const started = Date.now();
  return new Promise((done) => {
    execFile(
      process.execPath,
      [script],
      {
        env: { PATH: process.env.PATH ?? "", AGENTSTATE_PORT: "0", AGENTSTATE_METRICS_PORT: "-1", ...env },
        timeout: timeoutMs,
      },
      (err, stdout, stderr) => {
        const output = stdout + stderr;
        const lines = output
          .split("\n")
          .filter((l) => l.startsWith("{"))
          .map((l) => JSON.parse(l) as Record<string, unknown>);
        const code = err ? (typeof err.code === "number" ? err.code : null) : 0;
        done({ code, stdout, stderr, output, lines, ms: Date.now() - started });
      },
    );
  });
}
