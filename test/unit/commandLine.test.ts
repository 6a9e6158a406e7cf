import * as assert from "node:assert/strict";
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
