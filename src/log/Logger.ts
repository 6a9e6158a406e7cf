/**
 * Structured JSON logs, one object per line on stdout. Callers pass fields,
 * never values or secrets: keys are logged by namespace only, and connection
 * strings never appear.
 *
 * A line is built by concatenation (time, level, msg, the logger's own fields
 * serialised once, then the call's fields) rather than by spreading everything
 * into a fresh object: the service writes one line per RPC, so this is on the
 * hot path of every call.
 */
export type Level = "debug" | "info" | "warn" | "error";
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

// Date#toISOString per line is measurable at tens of thousands of lines a
// second; lines written within the same millisecond share the string.
let isoMs = -1;
let isoStr = "";
function isoNow(): string {
  const now = Date.now();
  if (now !== isoMs) {
    isoMs = now;
    isoStr = new Date(now).toISOString();
  }
  return isoStr;
}

// Lines go to stdout once per event-loop turn, joined, rather than one write
// syscall per line: at one line per RPC that syscall was a few percent of a
// cache hit's CPU. The turn's lines are written at its end (setImmediate), and
// whatever is pending when the process exits (process.exit, an uncaught
// exception) is written synchronously on 'exit'.
let pending = "";
let flushScheduled = false;
function flushStdout(): void {
  flushScheduled = false;
  if (pending === "") return;
  const out = pending;
  pending = "";
  process.stdout.write(out);
}
function stdoutLine(line: string): void {
  pending += line + "\n";
  if (!flushScheduled) {
    flushScheduled = true;
    setImmediate(flushStdout);
  }
  // Bound what a busy turn holds.
  if (pending.length > 64 * 1024) flushStdout();
}
process.on("exit", flushStdout);

export class Logger {
  private readonly min: number;
  /** The base fields as JSON members (`"a":1,"b":2`), or "" when there are none. */
  private readonly baseJson: string;

  constructor(
    private readonly level: Level = "info",
    private readonly base: Record<string, unknown> = {},
    private readonly out: (line: string) => void = stdoutLine,
  ) {
    this.min = ORDER[level];
    this.baseJson = JSON.stringify(base).slice(1, -1);
  }

  child(fields: Record<string, unknown>): Logger {
    return new Logger(this.level, { ...this.base, ...fields }, this.out);
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
    this.write("info", msg, fields);
  }

  private write(level: Level, msg: string, fields: Record<string, unknown> | undefined): void {
    let line = `{"time":"${isoNow()}","level":"${level}","msg":${JSON.stringify(msg)}`;
    if (fields && this.baseJson !== "" && Object.keys(fields).some((k) => Object.hasOwn(this.base, k))) {
      // A call's field overrides the logger's field of the same name (one member per name).
      line += `,${JSON.stringify({ ...this.base, ...fields }).slice(1)}`;
    } else {
      if (this.baseJson !== "") line += `,${this.baseJson}`;
      const f = fields ? JSON.stringify(fields) : "{}";
      line += f.length > 2 ? `,${f.slice(1)}` : "}";
    }
    this.out(line);
  }
}
