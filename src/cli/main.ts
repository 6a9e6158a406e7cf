#!/usr/bin/env node
/**
 * The `agentstate` command (package.json `bin`): parses the command line
 * (commandLine.ts) and runs the command. `npm start` runs `agentstate serve`
 * through scripts/start.mjs.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { audit } from "./audit";
import { parseCommandLine } from "./commandLine";
import { grant } from "./grant";
import { health } from "./health";
import { serve } from "./serve";
import { token } from "./token";

/** A command: the environment (with the flags' settings), its arguments and positionals. */
type Command = (
  env: Record<string, string | undefined>,
  args: Record<string, string>,
  positionals: string[],
) => Promise<void>;

const COMMANDS: Record<string, Command> = { serve, health, token, audit, grant };

/** The package version, from the package.json beside dist/. */
export function version(): string {
  const pkg = JSON.parse(readFileSync(join(__dirname, "..", "..", "..", "package.json"), "utf8")) as {
    version: string;
  };
  return pkg.version;
}

export async function runCli(argv: readonly string[]): Promise<void> {
  const cl = parseCommandLine(argv);
  switch (cl.kind) {
    case "help":
      process.stdout.write(cl.text);
      return;
    case "version":
      process.stdout.write(`agentstate ${version()}\n`);
      return;
    case "error":
      process.stderr.write(`agentstate: ${cl.message}\n\n${cl.text}`);
      process.exitCode = 2;
      return;
    case "run":
      return COMMANDS[cl.command]!({ ...process.env, ...cl.env }, cl.args, cl.positionals);
  }
}

/** Runs the command line; a start that throws is logged (with time and pid) and exits 1. */
export function main(argv: readonly string[]): void {
  runCli(argv).catch((err: unknown) => {
    const e = err instanceof Error ? err : new Error(String(err));
    const line = { level: "error", time: new Date().toISOString(), pid: process.pid, msg: "failed to start" };
    process.stderr.write(JSON.stringify({ ...line, error: e.message, stack: e.stack }) + "\n");
    process.exit(1);
  });
}

if (require.main === module) main(process.argv.slice(2));
