import * as assert from "node:assert/strict";
import { prettyLine, Logger } from "../../src/log/Logger";

function capture(level: "debug" | "info" | "warn" | "error", base?: Record<string, unknown>) {
  const lines: string[] = [];
  return { lines, log: new Logger(level, base, (l) => lines.push(l)) };
}

describe("Logger: one JSON object per line", () => {
  it("writes level, time, the logger's fields, the call's fields, then msg", () => {
    const { lines, log } = capture("info", { service: "agentstate", pid: 7 });
    log.info("rpc", { request_id: "r-1", rpc: "Get", code: "OK", ms: 0.12 });
    assert.equal(lines.length, 1);
    const o = JSON.parse(lines[0]!) as Record<string, unknown>;
    assert.deepEqual(Object.keys(o), ["level", "time", "service", "pid", "request_id", "rpc", "code", "ms", "msg"]);
    assert.equal(o.level, "info");
    assert.equal(o.msg, "rpc");
    assert.equal(o.ms, 0.12);
    assert.match(o.time as string, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });

  it("a call's field replaces the logger's field of the same name (one member per name)", () => {
    const { lines, log } = capture("info", { component: "cache", pid: 7 });
    log.warn("moved", { component: "epoch", epoch: 3 });
    assert.equal(lines[0]!.match(/"component"/g)?.length, 1);
    assert.deepEqual(JSON.parse(lines[0]!), {
      ...(JSON.parse(lines[0]!) as object),
      component: "epoch",
      pid: 7,
      epoch: 3,
    });
  });

  it("escapes what it writes, drops undefined fields, and writes nothing below its level", () => {
    const { lines, log } = capture("info");
    log.debug("dropped");
    log.info('quote " and \n newline', { a: undefined, b: 'x"y' });
    log.error("no fields");
    assert.equal(lines.length, 2);
    assert.deepEqual(JSON.parse(lines[0]!).b, 'x"y');
    assert.equal(JSON.parse(lines[0]!).msg, 'quote " and \n newline');
    assert.ok(!("a" in JSON.parse(lines[0]!)));
    assert.equal(JSON.parse(lines[1]!).msg, "no fields");
  });

  it("a child's field replaces its parent's field of the same name", () => {
    const { lines, log } = capture("info", { component: "cache" });
    log.child({ component: "epoch" }).child({ epoch: 3 }).info("moved", { component: "near" });
    log.child({ component: "epoch" }).info("moved");
    assert.deepEqual(
      lines.map((l) => [l.match(/"component"/g)?.length, (JSON.parse(l) as Record<string, unknown>).component]),
      [
        [1, "near"],
        [1, "epoch"],
      ],
    );
  });

  it("writes fields named like secrets as [redacted]", () => {
    const { lines, log } = capture("info", { service: "s" });
    log.warn("connect failed", { databaseUrl: "postgres://u:pw@h/db", password: "pw", error: "refused" });
    assert.deepEqual(JSON.parse(lines[0]!), {
      ...(JSON.parse(lines[0]!) as object),
      databaseUrl: "[redacted]",
      password: "[redacted]",
      error: "refused",
    });
    assert.ok(!lines[0]!.includes("pw@"));
  });

  it("child loggers add their fields; announce writes whatever the level", () => {
    const { lines, log } = capture("error", { service: "s" });
    log.child({ request_id: "r-2" }).error("boom", { error: "e" });
    log.announce("listening", { address: "127.0.0.1:1" });
    assert.deepEqual(
      lines.map((l) => JSON.parse(l) as Record<string, unknown>).map(({ time: _t, ...rest }) => rest),
      [
        { level: "error", msg: "boom", service: "s", request_id: "r-2", error: "e" },
        { level: "info", msg: "listening", service: "s", address: "127.0.0.1:1" },
      ],
    );
  });

  it("pretty lines read as time, level, pid, message, then key=value fields", () => {
    const { lines, log } = capture("info", { service: "agentstate", pid: 42 });
    log.info("listening", { address: "127.0.0.1:50051", database: "embedded", note: "two words", n: 3 });
    const pretty = prettyLine(lines[0]!);
    assert.match(pretty, /^\d\d:\d\d:\d\d\.\d\d\d INFO {2}\[42\] listening /);
    assert.match(pretty, / address=127\.0\.0\.1:50051 database=embedded note="two words" n=3$/);
    assert.ok(!pretty.includes("service="), "service is implied");
    assert.equal(prettyLine("not json"), "not json");
  });
});
