// bench/run.mjs --fanout-client go: the Go subscriber process (bench/fanout-go)
// behind the same interface as a forked bench/lib/fanoutSubscribers.mjs child
// (send(), "message", "exit", pid, kill()), its messages JSON lines on
// stdin/stdout instead of Node's IPC channel.
import { spawn } from "node:child_process";
import { EventEmitter } from "node:events";
import * as readline from "node:readline";

export function goSubscribers(bin, { address, req, count }) {
  const proc = spawn(bin, [address, req.namespace, req.stream, String(count)], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const child = new EventEmitter();
  child.pid = proc.pid;
  child.kill = (sig) => proc.kill(sig);
  child.send = (m) => proc.stdin.write(`${JSON.stringify(m)}\n`);
  readline.createInterface({ input: proc.stdout }).on("line", (line) => child.emit("message", JSON.parse(line)));
  proc.on("exit", (code) => child.emit("exit", code));
  proc.stdin.on("error", () => {}); // the process may be gone when the bench stops it
  return child;
}
