import * as assert from "node:assert/strict";
import { parseWhen } from "../../src/cli/audit";
import { COMMANDS, parseCommandLine } from "../../src/cli/commandLine";

describe("cli: parseCommandLine", () => {
  it("prints the command list for no arguments, --help, -h and help", () => {
    for (const argv of [[], ["--help"], ["-h"], ["help"]]) {
      const r = parseCommandLine(argv);
      assert.equal(r.kind, "help", JSON.stringify(argv));
      if (r.kind !== "help") continue;
      for (const name of Object.keys(COMMANDS)) assert.match(r.text, new RegExp(`^  ${name} `, "m"));
    }
  });

  it("prints a command's flags, each with its environment variable", () => {
    for (const argv of [
      ["serve", "--help"],
      ["help", "serve"],
      ["serve", "-h"],
    ]) {
      const r = parseCommandLine(argv);
      assert.equal(r.kind, "help");
      if (r.kind !== "help") continue;
      assert.match(r.text, /^usage: agentstate serve/);
      assert.match(r.text, /--port N .*\[AGENTSTATE_PORT\]/);
      assert.match(r.text, /--data-dir DIR .*\[AGENTSTATE_DATA_DIR\]/);
      assert.match(r.text, /DATABASE_URL/);
    }
  });

  it("answers --version, -v and version", () => {
    for (const argv of [["--version"], ["-v"], ["version"]])
      assert.deepEqual(parseCommandLine(argv), { kind: "version" });
  });

  it("turns flags into the environment settings they stand for", () => {
    assert.deepEqual(parseCommandLine(["serve", "--port", "0", "--data-dir", "/tmp/x", "--log-format=pretty"]), {
      kind: "run",
      command: "serve",
      env: { AGENTSTATE_PORT: "0", AGENTSTATE_DATA_DIR: "/tmp/x", LOG_FORMAT: "pretty" },
      args: {},
      positionals: [],
    });
    assert.deepEqual(parseCommandLine(["serve"]), {
      kind: "run",
      command: "serve",
      env: {},
      args: {},
      positionals: [],
    });
    assert.deepEqual(parseCommandLine(["health", "--timeout-ms", "500"]), {
      kind: "run",
      command: "health",
      env: { AGENTSTATE_HEALTHCHECK_TIMEOUT_MS: "500" },
      args: {},
      positionals: [],
    });
  });

  it("hands a command's arguments and positionals over as they are (token create)", () => {
    assert.deepEqual(parseCommandLine(["token", "create", "--namespace", "demo", "--role", "read,write", "--port=7"]), {
      kind: "run",
      command: "token",
      env: { AGENTSTATE_PORT: "7" },
      args: { namespace: "demo", role: "read,write" },
      positionals: ["create"],
    });
  });

  it('takes switches without a value (audit --json) as the argument "true", and lists them without one', () => {
    assert.deepEqual(
      parseCommandLine(["audit", "--namespace", "demo", "--since", "1h", "--json", "--key-prefix=jobs/"]),
      {
        kind: "run",
        command: "audit",
        env: {},
        args: { namespace: "demo", since: "1h", json: "true", "key-prefix": "jobs/" },
        positionals: [],
      },
    );
    const help = parseCommandLine(["audit", "--help"]);
    assert.equal(help.kind, "help");
    if (help.kind === "help") {
      assert.match(help.text, /^ {2}--json +one JSON object per change/m);
      assert.match(help.text, /^ {2}--since WHEN +/m);
    }
    assert.equal(parseCommandLine(["audit", "--json=yes"]).kind, "error");
    assert.equal(parseCommandLine(["audit", "stray"]).kind, "error");
  });

  it("refuses unknown commands, unknown flags, missing values and stray arguments, with the usage", () => {
    const cases: [string[], RegExp][] = [
      [["srve"], /unknown command "srve"/],
      [["serve", "--database-url", "postgres://u:p@h/db"], /database-url/],
      [["serve", "--port"], /--port/],
      [["serve", "extra"], /extra/],
    ];
    for (const [argv, message] of cases) {
      const r = parseCommandLine(argv);
      assert.equal(r.kind, "error", JSON.stringify(argv));
      if (r.kind !== "error") continue;
      assert.match(r.message, message);
      assert.match(r.text, /^usage: agentstate/);
    }
  });
});

describe("cli: audit --since/--until", () => {
  const now = Date.parse("2026-12-07T10:00:00Z");

  it("reads a duration before now or an ISO 8601 time", () => {
    assert.equal(parseWhen("since", "90s", now).toISOString(), "2026-12-07T09:58:30.000Z");
    assert.equal(parseWhen("since", "1h", now).toISOString(), "2026-12-07T09:00:00.000Z");
    assert.equal(parseWhen("since", "7d", now).toISOString(), "2026-11-30T10:00:00.000Z");
    assert.equal(parseWhen("until", "2026-12-07T09:30:00.250Z", now).toISOString(), "2026-12-07T09:30:00.250Z");
    assert.equal(parseWhen("until", "2026-12-07T11:30:00+02:00", now).toISOString(), "2026-12-07T09:30:00.000Z");
  });

  it("refuses anything else, naming the flag", () => {
    for (const bad of ["yesterday", "1y", "-1h", "2026-13-45T99:00:00Z", "1700000000", ""]) {
      assert.throws(() => parseWhen("since", bad, now), /^Error: --since must be a duration before now/, bad);
    }
  });
});
