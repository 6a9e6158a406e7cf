/**
 * The server's entry point, kept for what runs `node dist/src/main.js`
 * (tests, the client suites, older scripts): the same as `agentstate serve`
 * with the same flags. See src/cli/.
 */
import { main } from "./cli/main";

main(["serve", ...process.argv.slice(2)]);
