/**
 * The server's entry point, kept for what runs `node dist/src/main.js`
 * (tests, the client suites, older scripts): the same as `agentstate serve`
 * with the same flags. See src/cli/.
 */
import { runCli } from "./cli/main";

runCli(["serve", ...process.argv.slice(2)]).catch((err: unknown) => {
  const e = err instanceof Error ? err : new Error(String(err));
  process.stderr.write(
    JSON.stringify({ level: "error", msg: "failed to start", error: e.message, stack: e.stack }) + "\n",
  );
  process.exit(1);
});
