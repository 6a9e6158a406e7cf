/**
 * The container health check (the Dockerfile's HEALTHCHECK): the same as
 * `agentstate health`. See src/cli/health.ts.
 */
import { runCli } from "./cli/main";

void runCli(["health", ...process.argv.slice(2)]);
