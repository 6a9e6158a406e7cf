import * as assert from "node:assert/strict";
import { connectFailureReason, DependencyUnreachableError, isAuthFailure, urlTarget } from "../../src/errors/startup";

describe("startup errors: naming the cause", () => {
  it("keeps host and port of a URL and drops its credentials", () => {
    assert.equal(urlTarget("postgres://agent:s3cret@db.internal:6432/app?sslmode=require", 5432), "db.internal:6432");
    assert.equal(urlTarget("postgres://agent:s3cret@db.internal/app", 5432), "db.internal:5432");
    assert.equal(urlTarget("rediss://:s3cret@cache:6380/0", 6379), "cache:6380");
    assert.equal(urlTarget("not a url s3cret", 5432), "(unparseable URL)");
  });

  it("says what failed: refused, DNS, timeout, TLS, authentication, missing database", () => {
    const cases: [unknown, RegExp][] = [
      [Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), { code: "ECONNREFUSED" }), /^connection refused/],
      [Object.assign(new Error("getaddrinfo ENOTFOUND x"), { code: "ENOTFOUND" }), /^name not resolved$/],
      [new Error("timeout expired"), /^timed out/],
      [new Error("Connection terminated due to connection timeout"), /^timed out/],
      [new Error("The server does not support SSL connections"), /^TLS: the server does not support TLS/],
      [Object.assign(new Error("self-signed certificate"), { code: "DEPTH_ZERO_SELF_SIGNED_CERT" }), /^TLS: /],
      [
        Object.assign(new Error('password authentication failed for user "a"'), { code: "28P01" }),
        /^authentication failed/,
      ],
      [Object.assign(new Error('database "x" does not exist'), { code: "3D000" }), /^database does not exist/],
      [new AggregateError([Object.assign(new Error("refused"), { code: "ECONNREFUSED" })]), /^connection refused/],
      [new Error("something else"), /^something else$/],
    ];
    for (const [err, want] of cases) assert.match(connectFailureReason(err), want, String(err));
  });

  it("names refused Redis credentials (WRONGPASS, NOAUTH) as authentication, without the password", () => {
    const wrong = new Error("WRONGPASS invalid username-password pair or user is disabled.");
    const none = new Error("NOAUTH Authentication required.");
    assert.match(connectFailureReason(wrong), /^authentication failed \(wrong user name or password\): WRONGPASS/);
    assert.match(connectFailureReason(none), /^authentication required/);
    assert.ok(isAuthFailure(wrong) && isAuthFailure(none));
    assert.ok(isAuthFailure(Object.assign(new Error("x"), { code: "28P01" })));
    assert.ok(!isAuthFailure(Object.assign(new Error("refused"), { code: "ECONNREFUSED" })));
    assert.ok(!isAuthFailure(new Error("Connection is closed.")));
  });

  it("names the dependency and where in its message", () => {
    const e = new DependencyUnreachableError("postgres", "db:5432", "connection refused");
    assert.equal(e.message, "postgres at db:5432: connection refused");
  });
});
