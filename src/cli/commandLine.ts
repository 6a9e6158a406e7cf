/**
 * The `agentstate` command line: which command to run and the settings its
 * flags give. Flags are another way to set the same settings the environment
 * sets (config/config.ts reads both through one environment object, flags
 * winning), so every setting has one name, one default and one validation.
 * Settings that can hold credentials (DATABASE_URL, REDIS_URL, REDLOCK_URLS)
 * have no flag: a command line is visible to every user of the machine.
 *
 * Commands that act rather than configure (`token create`) also take
 * arguments: flags that are no setting (`--namespace`) and positionals (the
 * subcommand, an id), handed to the command as they are.
 *
 * Later commands (export/import, namespace stats) join COMMANDS with their
 * own flags.
 */
import { parseArgs, type ParseArgsConfig } from "node:util";

/** A flag that sets one environment setting. */
interface SettingFlag {
  env: string;
  value: string;
  help: string;
}

const SERVE_FLAGS: Record<string, SettingFlag> = {
  host: { env: "AGENTSTATE_HOST", value: "ADDR", help: "address to listen on (default 127.0.0.1)" },
  port: { env: "AGENTSTATE_PORT", value: "N", help: "gRPC port (default 50051; 0 picks a free one)" },
  "metrics-port": {
    env: "AGENTSTATE_METRICS_PORT",
    value: "N",
    help: "Prometheus /metrics port (default 9464; --metrics-port=-1 turns it off)",
  },
  "data-dir": {
    env: "AGENTSTATE_DATA_DIR",
    value: "DIR",
    help: "embedded Postgres data directory when DATABASE_URL is unset (default .agentstate)",
  },
  "log-level": { env: "LOG_LEVEL", value: "LEVEL", help: "debug, info, warn or error (default info)" },
  "log-format": {
    env: "LOG_FORMAT",
    value: "FORMAT",
    help: "json or pretty (default: pretty on a terminal, json otherwise)",
  },
  "tls-cert-file": {
    env: "AGENTSTATE_TLS_CERT_FILE",
    value: "PEM",
    help: "serve TLS with this certificate (chain); reloaded when it changes",
  },
  "tls-key-file": { env: "AGENTSTATE_TLS_KEY_FILE", value: "PEM", help: "the certificate's private key" },
  "tls-client-ca-file": {
    env: "AGENTSTATE_TLS_CLIENT_CA_FILE",
    value: "PEM",
    help: "mTLS: clients must present a certificate signed by this CA",
  },
  "redis-prefix": {
    env: "AGENTSTATE_REDIS_PREFIX",
    value: "P",
    help: "prefix of every Redis key this deployment uses (default agentstate)",
  },
};

const HEALTH_FLAGS: Record<string, SettingFlag> = {
  host: SERVE_FLAGS.host!,
  port: SERVE_FLAGS.port!,
  "tls-ca-file": {
    env: "AGENTSTATE_TLS_CA_FILE",
    value: "PEM",
    help: "CA to trust for the server's certificate (default: AGENTSTATE_TLS_CERT_FILE itself)",
  },
  "timeout-ms": {
    env: "AGENTSTATE_HEALTHCHECK_TIMEOUT_MS",
    value: "MS",
    help: "how long to wait for the answer (default 2000)",
  },
};

/** A flag that is an argument of the command, not a setting. */
interface ArgFlag {
  /** How its value reads in the help; unset: a switch that takes none (its argument is then "true"). */
  value?: string;
  help: string;
}

interface CommandSpec {
  summary: string;
  flags: Record<string, SettingFlag>;
  /** Arguments of the command (not settings); unset: none. */
  args?: Record<string, ArgFlag>;
  /** How the positionals read in the usage line ("create|list|revoke [ID]"); unset: none allowed. */
  positionals?: string;
  /** Lines after the flags in the command's help. */
  notes: string[];
}

const TOKEN_FLAGS: Record<string, SettingFlag> = {
  ...HEALTH_FLAGS,
  "timeout-ms": {
    env: "AGENTSTATE_CLI_TIMEOUT_MS",
    value: "MS",
    help: "how long to wait for the answer (default 10000)",
  },
  token: {
    env: "AGENTSTATE_TOKEN",
    value: "TOKEN",
    help: "an admin token (prefer the environment: a command line is visible to every user of the machine)",
  },
  "tls-client-cert-file": {
    env: "AGENTSTATE_TLS_CLIENT_CERT_FILE",
    value: "PEM",
    help: "mTLS: the client certificate to present (default under mTLS: the server's own)",
  },
  "tls-client-key-file": { env: "AGENTSTATE_TLS_CLIENT_KEY_FILE", value: "PEM", help: "its private key" },
};

export const COMMANDS: Record<string, CommandSpec> = {
  serve: {
    summary: "run the server (what `npm start` runs)",
    flags: SERVE_FLAGS,
    notes: [
      "Every flag has an environment variable (shown); a flag wins over the environment.",
      "DATABASE_URL (unset: an embedded Postgres in --data-dir), REDIS_URL (the cache; unset: off) and",
      "REDLOCK_URLS (lock masters; default: the cache Redis) are read from the environment only, since",
      "they may hold credentials. Every other setting is listed in README.md (Configuration).",
      "Beyond loopback (--host other than 127.0.0.1, ::1, localhost) the server needs TLS, or",
      "AGENTSTATE_INSECURE=1 to serve plaintext on purpose. AGENTSTATE_AUTH=required turns authentication on.",
      "SIGTERM or SIGINT (Ctrl-C) stops taking calls, drains, and stops the embedded Postgres.",
    ],
  },
  health: {
    summary: "ask a running server whether it is SERVING (exit 0) or not (exit 1)",
    flags: HEALTH_FLAGS,
    notes: ["What the container image's HEALTHCHECK runs."],
  },
  token: {
    summary: "create, list or revoke API tokens on a running server (AGENTSTATE_AUTH=required)",
    flags: TOKEN_FLAGS,
    positionals: "create|list|revoke [ID]",
    args: {
      namespace: { value: "NS", help: "create: the namespace (or pattern ending in *) the token's grant covers" },
      role: { value: "ROLES", help: "create: comma-separated roles: read, write, lock, admin" },
      prefix: { value: "P", help: "create: keys, streams and lock names must start with this (default: all)" },
      ttl: { value: "TTL", help: "create: lifetime such as 3600s, 90m, 12h or 30d (default: until revoked)" },
      principal: { value: "NAME", help: "create: the principal it acts for (default: NS-ROLES)" },
    },
    notes: [
      "  agentstate token create --namespace demo --role read,write --ttl 30d",
      "  agentstate token list",
      "  agentstate token revoke ID",
      "Talks to the server with the admin token in AGENTSTATE_TOKEN (or --token). `create` prints the new",
      "token once, as JSON on stdout ({id, token, expire_time}); it is never shown again.",
    ],
  },
  audit: {
    summary: "who changed what in a namespace, newest first (AdminService.ListChanges; AGENTSTATE_AUTH=required)",
    flags: TOKEN_FLAGS,
    args: {
      namespace: { value: "NS", help: "the namespace (required)" },
      since: {
        value: "WHEN",
        help: "changes at or after: a duration before now (90s, 15m, 1h, 7d) or an ISO 8601 time",
      },
      until: { value: "WHEN", help: "changes before: the same forms (default: now)" },
      principal: { value: "NAME", help: "only changes made by this principal" },
      "key-prefix": { value: "P", help: "only keys and streams that start with this" },
      limit: { value: "N", help: "most changes to print (default 100)" },
      json: { help: "one JSON object per change instead of a table" },
    },
    notes: [
      "  agentstate audit --namespace demo --since 1h",
      "  agentstate audit --namespace demo --since 2026-12-07T09:00:00Z --principal ci-bot --key-prefix jobs/ --json",
      "Talks to the server with an admin token (admin on the namespace) in AGENTSTATE_TOKEN (or --token).",
      "Each change shows its time, revision, operation (put, delete, expire, append), key or stream, version,",
      "principal ((anonymous): made with auth off; -: not recorded, as for expiries) and request id (the",
      "x-request-id of the call that made it). Never a value.",
    ],
  },

  grant: {
    summary: "add, revoke or list roles stored in a running server for certificate and JWT principals",
    flags: TOKEN_FLAGS,
    positionals: "add|revoke|list",
    args: {
      principal: {
        value: "NAME",
        help: "the principal (a certificate principal's name or a JWT's sub); list: only its",
      },
      namespace: { value: "NS", help: "add, revoke: the grant's namespace (or pattern ending in *)" },
      role: { value: "ROLES", help: "comma-separated roles: read, write, lock, admin (revoke: default all)" },
      prefix: { value: "P", help: "add, revoke: the grant's key prefix (default: none, the whole namespace)" },
    },
    notes: [
      "  agentstate grant add --principal billing --namespace billing --role read,write",
      "  agentstate grant revoke --principal billing --namespace billing --role write",
      "  agentstate grant list [--principal billing]",
      "A principal proven by a client certificate or a JWT holds these on top of its credential's own grants;",
      "API tokens never do. Changes reach every replica within a second. Needs AGENTSTATE_TOKEN (admin).",
    ],
  },
};

export type CommandLine =
  | { kind: "help"; text: string }
  | { kind: "version" }
  | { kind: "run"; command: string; env: Record<string, string>; args: Record<string, string>; positionals: string[] }
  | { kind: "error"; message: string; text: string };

/** Parses `argv` (without node and the script). Never throws: bad input is an "error" with the usage to print. */
export function parseCommandLine(argv: readonly string[]): CommandLine {
  const [first, ...rest] = argv;
  if (first === undefined || first === "help" || first === "--help" || first === "-h") {
    const topic = first === "help" ? rest[0] : undefined;
    if (topic !== undefined && COMMANDS[topic]) return { kind: "help", text: commandHelp(topic) };
    return { kind: "help", text: mainHelp() };
  }
  if (first === "--version" || first === "-v" || first === "version") return { kind: "version" };
  const spec = COMMANDS[first];
  if (!spec) return { kind: "error", message: `unknown command "${first}"`, text: mainHelp() };

  const options: NonNullable<ParseArgsConfig["options"]> = { help: { type: "boolean", short: "h" } };
  for (const name of Object.keys(spec.flags)) options[name] = { type: "string" };
  for (const [name, a] of Object.entries(spec.args ?? {})) {
    options[name] = { type: a.value === undefined ? "boolean" : "string" };
  }
  let parsed;
  try {
    parsed = parseArgs({ args: [...rest], options, allowPositionals: spec.positionals !== undefined, strict: true });
  } catch (err) {
    return { kind: "error", message: (err as Error).message, text: commandHelp(first) };
  }
  if (parsed.values.help === true) return { kind: "help", text: commandHelp(first) };
  const env: Record<string, string> = {};
  for (const [name, flag] of Object.entries(spec.flags)) {
    const v = parsed.values[name];
    if (typeof v === "string") env[flag.env] = v;
  }
  const args: Record<string, string> = {};
  for (const name of Object.keys(spec.args ?? {})) {
    const v = parsed.values[name];
    if (typeof v === "string") args[name] = v;
    else if (v === true) args[name] = "true";
  }
  return { kind: "run", command: first, env, args, positionals: parsed.positionals };
}

function mainHelp(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  return [
    "usage: agentstate <command> [flags]",
    "",
    "Shared state for AI agents over gRPC: versioned keys with compare-and-set,",
    "fenced locks and event streams, on Postgres with a Redis cache.",
    "",
    "commands:",
    ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    "",
    "  agentstate <command> --help   flags of one command",
    "  agentstate --version          the version",
    "",
  ].join("\n");
}

function commandHelp(name: string): string {
  const spec = COMMANDS[name]!;
  const rows = [
    ...Object.entries(spec.args ?? {}).map(([flag, f]) => [
      f.value === undefined ? `--${flag}` : `--${flag} ${f.value}`,
      f.help,
    ]),
    ...Object.entries(spec.flags).map(([flag, f]) => [`--${flag} ${f.value}`, `${f.help} [${f.env}]`]),
  ];
  const width = Math.max(...rows.map(([left]) => left!.length));
  return [
    `usage: agentstate ${name}${spec.positionals ? ` ${spec.positionals}` : ""} [flags]`,
    "",
    `${spec.summary[0]!.toUpperCase()}${spec.summary.slice(1)}.`,
    "",
    "flags:",
    ...rows.map(([left, right]) => `  ${left!.padEnd(width)}  ${right}`),
    `  ${"--help".padEnd(width)}  this text`,
    "",
    ...spec.notes,
    "",
  ].join("\n");
}
