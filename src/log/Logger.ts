/**
 * Structured JSON logs, one object per line on stdout. Callers pass fields,
 * never values or secrets: keys are logged by namespace only, and connection
 * strings never appear.
 */
export type Level = "debug" | "info" | "warn" | "error";
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export class Logger {
  constructor(
    private readonly level: Level = "info",
    private readonly base: Record<string, unknown> = {},
    private readonly out: (line: string) => void = (l) => process.stdout.write(l + "\n"),
  ) {}

  child(fields: Record<string, unknown>): Logger {
    return new Logger(this.level, { ...this.base, ...fields }, this.out);
  }

  debug(msg: string, fields?: Record<string, unknown>): void {
    this.write("debug", msg, fields);
  }
  info(msg: string, fields?: Record<string, unknown>): void {
    this.write("info", msg, fields);
  }
  warn(msg: string, fields?: Record<string, unknown>): void {
    this.write("warn", msg, fields);
  }
  error(msg: string, fields?: Record<string, unknown>): void {
    this.write("error", msg, fields);
  }

  /** Written whatever the level (e.g. the "listening" line that tools wait for). */
  announce(msg: string, fields?: Record<string, unknown>): void {
    this.out(JSON.stringify({ time: new Date().toISOString(), level: "info", msg, ...this.base, ...fields }));
  }

  private write(level: Level, msg: string, fields?: Record<string, unknown>): void {
    if (ORDER[level] < ORDER[this.level]) return;
    this.out(JSON.stringify({ time: new Date().toISOString(), level, msg, ...this.base, ...fields }));
  }
}
