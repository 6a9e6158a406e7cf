/**
 * Runs the Porcupine checker (test/faults/checker) on a KV history file.
 */
import { execFile } from "node:child_process";
import * as os from "node:os";

export interface PorcupineResult {
  result: "Ok" | "Illegal" | "Unknown" | "Error";
  linearizable: boolean;
  operations: number;
  keys: number;
  indeterminate: number;
  committed: number;
  perKey?: { key: string; operations: number; result: string; durationMs: number }[];
  gets: number;
  writes: number;
  appliedWrites: number;
  durationMs: number;
  visualization?: string;
  error?: string;
}

export function checkLinearizable(
  checkerBin: string,
  historyPath: string,
  opts: { timeoutMs: number; visPath?: string },
): Promise<PorcupineResult> {
  const args = ["-history", historyPath, "-timeout", `${Math.round(opts.timeoutMs)}ms`];
  if (opts.visPath) args.push("-vis", opts.visPath);
  // The search can need a lot of memory on a hard history: cap it (address space, as
  // `ulimit -v`), so a pathological check fails alone instead of starving the machine.
  const limitKb = Math.floor(Math.min(8 * 1024 ** 3, os.totalmem() * 0.4) / 1024);
  const script = `ulimit -v ${limitKb} 2>/dev/null; exec "$0" "$@"`;
  return new Promise((resolve, reject) => {
    execFile("sh", ["-c", script, checkerBin, ...args], { maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      // Exit 1 (not linearizable) and 2 (timed out) still print a result.
      try {
        resolve(JSON.parse(stdout) as PorcupineResult);
      } catch {
        reject(new Error(`checker failed: ${err?.message ?? "no output"}\n${stdout}\n${stderr.slice(0, 2000)}`));
      }
    });
  });
}
