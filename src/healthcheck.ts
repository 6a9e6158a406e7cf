/**
 * The container health check (the Dockerfile's HEALTHCHECK): the same as
 * `agentstate health`. See src/cli/health.ts.
 */
import { main } from "./cli/main";

main(["health", ...process.argv.slice(2)]);
