/**
 * Structured JSON logs, one object per line on stdout, written by pino:
 *
 *   {"level":"info","time":"2026-12-07T04:00:00.000Z","service":"agentstate","pid":7,
 *    "request_id":"…","rpc":"Get","code":"OK","ms":0.12,"msg":"rpc"}
 *
 * `level` is a name, `time` an ISO string, then the logger's own fields
 * (child loggers add theirs), then the call's fields, then `msg`. A call's
 * field replaces a logger's field of the same name, so every name appears
 * once. Callers pass fields, never values or secrets; fields whose names say
 * they hold one (password, token, connection strings, ...) are written as
 * "[redacted]" all the same.
 *
 * The service writes one line per RPC, so this is on the hot path of every
 * call. What keeps it cheap: pino serialises a child's fields once, when the
 * child is made; the ISO time is made once per millisecond; redaction is
 * compiled to a lookup on top-level names, which are checked anyway; and a
 * turn of the event loop writes its lines to stdout in one write.
 *
 * pino's own batched destination (pino.destination, sonic-boom with
 * `sync: false`) was measured on that path and not taken: it costs about
 * 2-3 times the CPU per "rpc" line of the old hand-written logger at 16-256
 * lines per turn (it measures the byte length of its pending chunk on every
 * line, and hands each batch to the thread pool), where pino's serialiser
 * with the per-turn batch below costs less than the old logger
 * (bench/experiments/logger-lines.mjs). It would also leave a batch in
 * flight in the thread pool that process.exit can lose.
 */
import { pino, type DestinationStream, type Logger as Pino } from "pino";

export type Level = "debug" | "info" | "warn" | "error";
const ORDER: Record<Level, number> = { debug: 20, info: 30, warn: 40, error: 50 };

/** Above every level: `announce` lines are written whatever the configured level, shown as "info". */
const ANNOUNCE = 100;
type Root = Pino<"announce">;

/** Field names whose values are written as "[redacted]" (top-level names: no per-line cost for others). */
const SECRET_FIELDS = [
  "password",
  "passwd",
  "secret",
  "token",
  "api_key",
  "apiKey",
  "authorization",
  "cookie",
  "credentials",
  "private_key",
  "privateKey",
  "connection_string",
  "connectionString",
  "database_url",
  "databaseUrl",
  "redis_url",
  "redisUrl",
  "redlock_urls",
  "redlockUrls",
  "headers.authorization",
  "headers.cookie",
];

// Date#toISOString per line is measurable at tens of thousands of lines a
// second; lines written within the same millisecond share the string.
let isoMs = -1;
let isoMember = "";
function isoTime(): string {
  const now = Date.now();
  if (now !== isoMs) {
    isoMs = now;
    isoMember = `,"time":"${new Date(now).toISOString()}"`;
  }
  return isoMember;
}

// Lines go to stdout once per event-loop turn, joined, rather than one write
// per line: at one line per RPC that write was a few percent of a cache
// hit's CPU. The turn's lines are written at its end (setImmediate), and
// whatever is pending when the process exits (process.exit, an uncaught
// exception) is written synchronously on 'exit', so the last lines
// ("stopped") are never lost. (pino.destination, sonic-boom, was measured
// and left out: see the module comment.)
let pending = "";
let flushScheduled = false;
function flushStdout(): void {
  flushScheduled = false;
  if (pending === "") return;
  const out = pending;
  pending = "";
  process.stdout.write(out);
}
process.on("exit", flushStdout);
const stdout: DestinationStream = {
  write(line: string): void {
    pending += line;
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flushStdout);
    }
    // Bound what a busy turn holds.
    if (pending.length > 64 * 1024) flushStdout();
  },
};

/** How lines are written: JSON for machines, or one readable line per event for a person at a terminal. */
export type LogFormat = "json" | "pretty";

/** Fields a pretty line shows in its head (or not at all), not among its key=value pairs. */
const PRETTY_HEAD = new Set(["level", "time", "msg", "service", "pid"]);

/**
 * One JSON line as a person reads it: `12:00:00.123 INFO  [pid] msg key=value ...`.
 * Strings with spaces or quotes are quoted; objects are written as JSON.
 */
export function prettyLine(json: string): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json;
  }
  const time = typeof o.time === "string" ? o.time.slice(11, 23) : "";
  const level = String(o.level ?? "")
    .toUpperCase()
    .padEnd(5);
  const parts = [`${time} ${level} [${String(o.pid ?? "")}] ${String(o.msg ?? "")}`];
  for (const [k, v] of Object.entries(o)) {
    if (PRETTY_HEAD.has(k) || v === undefined) continue;
    const s = typeof v === "string" ? (/^[^\s"=]+$/.test(v) ? v : JSON.stringify(v)) : JSON.stringify(v);
    parts.push(`${k}=${s}`);
  }
  return parts.join(" ");
}

/** Stdout, each line made readable (LOG_FORMAT=pretty). Not on a hot path that matters: a person reads it. */
const prettyStdout: DestinationStream = {
  write(line: string): void {
    stdout.write(prettyLine(line.endsWith("\n") ? line.slice(0, -1) : line) + "\n");
  },
};

/** A destination for tests and tools: each line (without its newline) to `out`. */
function lineSink(out: (line: string) => void): DestinationStream {
  return { write: (s: string) => out(s.endsWith("\n") ? s.slice(0, -1) : s) };
}

function rootLogger(level: Level, dest: DestinationStream): Root {
  return pino<"announce">(
    {
      level,
      customLevels: { announce: ANNOUNCE },
      base: undefined, // no pid or hostname of pino's own: the caller's base fields say what it wants
      timestamp: isoTime,
      messageKey: "msg",
      formatters: { level: (label) => ({ level: label === "announce" ? "info" : label }) },
      redact: { paths: SECRET_FIELDS, censor: "[redacted]" },
    },
    dest,
  );
}

export class Logger {
  private readonly min: number;
  private readonly root: Root;
  /**
   * pino with `base` serialised once, made on the first line: a child that
   * never writes (a call's logger, made for an error that is not logged)
   * costs no more than its fields.
   */
  private bound: Root | undefined;
  /** The names of `base`, for the same-name check (usually one or two); set with `bound`. */
  private baseNames: readonly string[] = [];

  /**
   * `out`: where lines go. Stdout (batched) by default, as JSON or, with
   * `format` "pretty", readable lines; a function gets each JSON line
   * (tests); a Logger shares that logger's output.
   */
  constructor(
    private readonly level: Level = "info",
    private readonly base: Record<string, unknown> = {},
    out?: ((line: string) => void) | Logger,
    format: LogFormat = "json",
  ) {
    this.min = ORDER[level];
    this.root =
      out instanceof Logger
        ? out.root
        : rootLogger(level, out !== undefined ? lineSink(out) : format === "pretty" ? prettyStdout : stdout);
  }

  child(fields: Record<string, unknown>): Logger {
    return new Logger(this.level, { ...this.base, ...fields }, this);
  }

  /** Whether lines at `level` are written (to skip building fields that would be dropped). */
  enabled(level: Level): boolean {
    return ORDER[level] >= this.min;
  }

  debug(msg: string, fields?: Record<string, unknown>): void {
    if (ORDER.debug >= this.min) this.write("debug", msg, fields);
  }
  info(msg: string, fields?: Record<string, unknown>): void {
    if (ORDER.info >= this.min) this.write("info", msg, fields);
  }
  warn(msg: string, fields?: Record<string, unknown>): void {
    if (ORDER.warn >= this.min) this.write("warn", msg, fields);
  }
  error(msg: string, fields?: Record<string, unknown>): void {
    if (ORDER.error >= this.min) this.write("error", msg, fields);
  }

  /** Written whatever the level (e.g. the "listening" line that tools wait for). */
  announce(msg: string, fields?: Record<string, unknown>): void {
    this.write("announce", msg, fields);
  }

  private write(level: Level | "announce", msg: string, fields: Record<string, unknown> | undefined): void {
    const bound = (this.bound ??= this.bind());
    if (fields !== undefined && this.sharesName(fields)) {
      // One member per name: the logger's fields, with the call's in their place.
      this.root[level]({ ...this.base, ...fields }, msg);
    } else {
      bound[level](fields, msg);
    }
  }

  private bind(): Root {
    this.baseNames = Object.keys(this.base);
    return this.baseNames.length > 0 ? this.root.child(this.base) : this.root;
  }

  private sharesName(fields: Record<string, unknown>): boolean {
    for (const k of this.baseNames) if (Object.hasOwn(fields, k)) return true;
    return false;
  }
}
