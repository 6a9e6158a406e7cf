/**
 * Health tells the truth (issue 17): a server whose Postgres is stopped or
 * frozen (SIGSTOP) answers grpc.health.v1 NOT_SERVING, overall and for every
 * service, within AGENTSTATE_HEALTH_UNHEALTHY_AFTER_MS (plus a probe and a
 * margin), and SERVING again once Postgres is back. With Redlock, a lost
 * quorum of masters makes LockService NOT_SERVING while the rest serves.
 *
 * On a frozen Postgres a CompareAndSet and a Get end with UNAVAILABLE or
 * DEADLINE_EXCEEDED at the client-side query timeout (AGENTSTATE_QUERY_TIMEOUT_MS),
 * never at the client's long deadline. A LISTEN connection that is killed is
 * opened again and subscribers catch up at once, not at the next poll.
 *
 * Each case runs its own Postgres (or Redis) so stopping it disturbs no other
 * test; a frozen Postgres is always continued in `after`.
 */
import * as assert from "node:assert/strict";
import { status, type ServiceError } from "@grpc/grpc-js";
import { Consistency } from "../../clients/typescript/src/gen/agentstate/v1/kv";
import { randomUUID } from "node:crypto";
import { EventClient, type Subscription } from "../support/eventClient";
import { pgQuery } from "../support/pgQuery";
import { HealthClient, type ServingStatus } from "../support/HealthClient";
import { PostgresProcess } from "../support/PostgresProcess";
import { pgTree, signalTree } from "../support/pgFreeze";
import { RedisProcess } from "../support/RedisProcess";
import { startCluster, type Cluster } from "../support/startCluster";

const SERVICES = ["", "agentstate.v1.KeyValueService", "agentstate.v1.LockService", "agentstate.v1.EventService"];
const PROBE_MS = 250;
const UNHEALTHY_AFTER_MS = 1500;
/** The threshold, one probe, the probe's own timeout, and room for a busy 2-core machine. */
const DETECT_WITHIN_MS = UNHEALTHY_AFTER_MS + PROBE_MS + 2000 + 3000;
const HEALTH_ENV = {
  AGENTSTATE_HEALTH_PROBE_MS: String(PROBE_MS),
  AGENTSTATE_HEALTH_UNHEALTHY_AFTER_MS: String(UNHEALTHY_AFTER_MS),
};
const STATEMENT_TIMEOUT_MS = 1000;
const QUERY_TIMEOUT_MS = 2000;
/**
 * A call on a frozen Postgres ends by the client-side query timeout, or by
 * the pool's connect timeout (5 s) when it needs a new connection; plus room
 * for a busy machine (a CompareAndSet took 9.06 s in a Node 22 run at load 9,
 * over the 9 s this bound was). Far below the client's own deadline, which
 * is what a call that hung would reach.
 */
const CALL_ENDS_WITHIN_MS = Math.max(QUERY_TIMEOUT_MS, 5000) + 10_000;
const CLIENT_DEADLINE_MS = 60_000;

/** Runs `call`, which must fail with UNAVAILABLE or DEADLINE_EXCEEDED; returns how long it took and what it said. */
async function endsWithin(call: () => Promise<unknown>): Promise<{ ms: number; code: number; details: string }> {
  const t0 = Date.now();
  try {
    await call();
  } catch (err) {
    const e = err as ServiceError;
    assert.ok(
      e.code === status.UNAVAILABLE || e.code === status.DEADLINE_EXCEEDED,
      `expected UNAVAILABLE or DEADLINE_EXCEEDED, got ${e.code} ${e.details}`,
    );
    return { ms: Date.now() - t0, code: e.code, details: e.details };
  }
  assert.fail("the call succeeded against a frozen Postgres");
}

async function statuses(h: HealthClient): Promise<ServingStatus[]> {
  return Promise.all(SERVICES.map((s) => h.check(s, 3000)));
}

/** Waits until every service reports `want`; returns how long it took. */
async function waitAll(h: HealthClient, want: ServingStatus, withinMs: number): Promise<number> {
  const t0 = Date.now();
  let last: ServingStatus[] = [];
  while (Date.now() - t0 < withinMs) {
    last = await statuses(h).catch(() => []);
    if (last.length === SERVICES.length && last.every((s) => s === want)) return Date.now() - t0;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`not all ${want} within ${withinMs} ms: ${JSON.stringify(last)}`);
}

describe("health tells the truth: Postgres stopped or frozen -> NOT_SERVING, back -> SERVING", function () {
  this.timeout(120_000);
  let pg: PostgresProcess | undefined;
  let cluster: Cluster | undefined;
  let health: HealthClient | undefined;
  let frozen: number[] = [];

  before(async () => {
    pg = await PostgresProcess.start();
    await pg.createDatabase("healthdeps");
    cluster = await startCluster({
      databaseUrl: pg.url("healthdeps"),
      env: {
        ...HEALTH_ENV,
        AGENTSTATE_STATEMENT_TIMEOUT_MS: String(STATEMENT_TIMEOUT_MS),
        AGENTSTATE_QUERY_TIMEOUT_MS: String(QUERY_TIMEOUT_MS),
      },
    });
    health = new HealthClient(cluster.servers[0]!.address);
  });

  after(async () => {
    signalTree(frozen, "SIGCONT");
    health?.close();
    await cluster?.stop();
    await pg?.destroy();
  });

  it("serves while Postgres answers", async () => {
    assert.deepEqual(
      await statuses(health!),
      SERVICES.map(() => "SERVING"),
    );
  });

  it("stopped: NOT_SERVING within the threshold, logged once; restarted: SERVING again", async () => {
    const server = cluster!.servers[0]!;
    await pg!.stop();
    await waitAll(health!, "NOT_SERVING", DETECT_WITHIN_MS);
    await pg!.restart();
    await waitAll(health!, "SERVING", DETECT_WITHIN_MS);
    const downs = server.logs().filter((l) => l["msg"] === "dependency down: not serving");
    const ups = server.logs().filter((l) => l["msg"] === "dependency back: serving");
    assert.equal(downs.length, 1, JSON.stringify(downs));
    assert.equal(downs[0]!["level"], "warn");
    assert.equal(downs[0]!["dependency"], "postgres");
    assert.equal(ups.length, 1, JSON.stringify(ups));
    // Data calls work again.
    await cluster!.clients[0]!.compareAndSet({
      namespace: "healthdeps",
      key: "k",
      expected: { any: true },
      value: Buffer.from("v"),
    });
  });

  it("frozen (SIGSTOP): NOT_SERVING within the threshold, calls end at the query timeout; SIGCONT: SERVING again", async () => {
    const client = cluster!.clients[0]!;
    // Warm the pool so the calls below meet connections already open (the query timeout, not the connect timeout).
    await Promise.all(
      Array.from({ length: 4 }, (_, i) =>
        client.get({ namespace: "healthdeps", key: `warm${i}`, consistency: Consistency.CONSISTENCY_DATABASE }),
      ),
    );
    frozen = pgTree(pg!);
    assert.ok(frozen.length > 1, "the postmaster and its backends");
    signalTree(frozen, "SIGSTOP");
    const deadlineMs = CLIENT_DEADLINE_MS;
    const [cas, get] = await Promise.all([
      endsWithin(() =>
        client.compareAndSet(
          { namespace: "healthdeps", key: "frozen", expected: { any: true }, value: Buffer.from("v") },
          { deadlineMs },
        ),
      ),
      endsWithin(() =>
        client.get(
          { namespace: "healthdeps", key: "frozen", consistency: Consistency.CONSISTENCY_DATABASE },
          { deadlineMs },
        ),
      ),
    ]);
    assert.ok(cas.ms < CALL_ENDS_WITHIN_MS, `CompareAndSet took ${cas.ms} ms: ${cas.details}`);
    assert.ok(get.ms < CALL_ENDS_WITHIN_MS, `Get took ${get.ms} ms: ${get.details}`);
    if (cas.code === status.UNAVAILABLE && /query timeout/.test(cas.details)) {
      // A write the client stopped waiting for may still commit: the message must not say "nothing was written".
      assert.match(cas.details, /may or may not have been applied/);
    }
    await waitAll(health!, "NOT_SERVING", DETECT_WITHIN_MS);
    signalTree(frozen, "SIGCONT");
    frozen = [];
    await waitAll(health!, "SERVING", DETECT_WITHIN_MS);
    await cluster!.clients[0]!.compareAndSet({
      namespace: "healthdeps",
      key: "k2",
      expected: { any: true },
      value: Buffer.from("v"),
    });
  });
});

describe("health tells the truth: Redlock without a quorum -> LockService NOT_SERVING", function () {
  this.timeout(120_000);
  let redis: RedisProcess | undefined;
  let cluster: Cluster | undefined;
  let health: HealthClient | undefined;

  before(async () => {
    redis = await RedisProcess.start();
    cluster = await startCluster({ env: { ...HEALTH_ENV, REDLOCK_URLS: redis.url } });
    health = new HealthClient(cluster.servers[0]!.address);
  });

  after(async () => {
    health?.close();
    await cluster?.stop();
    await redis?.destroy();
  });

  it("master down: LockService NOT_SERVING, the rest SERVING; back: SERVING", async () => {
    assert.equal(await health!.check("agentstate.v1.LockService"), "SERVING");
    await redis!.stop();
    const t0 = Date.now();
    while ((await health!.check("agentstate.v1.LockService")) !== "NOT_SERVING") {
      assert.ok(Date.now() - t0 < DETECT_WITHIN_MS, "LockService still SERVING");
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(await health!.check(""), "SERVING");
    assert.equal(await health!.check("agentstate.v1.KeyValueService"), "SERVING");
    await redis!.restart();
    const t1 = Date.now();
    while ((await health!.check("agentstate.v1.LockService")) !== "SERVING") {
      assert.ok(Date.now() - t1 < DETECT_WITHIN_MS + 5000, "LockService still NOT_SERVING");
      await new Promise((r) => setTimeout(r, 100));
    }
  });
});

describe("the LISTEN connection: killed -> reopened, subscribers woken to catch up", function () {
  this.timeout(120_000);
  const POLL_MS = 60_000;
  /** Well under the poll interval: only LISTEN/NOTIFY or the reconnect's catch-up can deliver this fast. */
  const DELIVER_WITHIN_MS = 8000;
  let cluster: Cluster | undefined;
  let events: EventClient | undefined;
  const subs: Subscription[] = [];

  before(async () => {
    cluster = await startCluster({ env: { AGENTSTATE_SUBSCRIBE_POLL_MS: String(POLL_MS) } });
    events = new EventClient(cluster.servers[0]!.address);
  });

  after(async () => {
    for (const s of subs) s.cancel();
    events?.close();
    await cluster?.stop();
  });

  const killListen = async (): Promise<number> => {
    const db = new URL(cluster!.databaseUrl).pathname.slice(1);
    const rows = await pgQuery<{ n: number }>(
      cluster!.databaseUrl,
      "SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE application_name = 'agentstate-listen' AND datname = $1",
      [db],
    );
    return rows[0]!.n;
  };
  const append = (stream: string, n: number) =>
    events!.appendEvent({
      namespace: "listen",
      stream,
      expected: { any: true },
      events: [{ id: randomUUID(), type: "t", data: Buffer.from(String(n)), metadata: {} }],
    });

  it("an append right after the kill, and one after the reconnect, both arrive well under the poll interval", async () => {
    const sub = events!.subscribe({ namespace: "listen", streamPrefix: "s/", afterPosition: 0 });
    subs.push(sub);
    await sub.caughtUp;
    const r0 = await append("s/a", 0);
    await sub.untilPosition(r0.position, DELIVER_WITHIN_MS);

    assert.equal(await killListen(), 1, "the server's LISTEN connection");
    // The loss itself wakes the subscriber (it re-reads and finds nothing new). The append then commits
    // before the notifier reconnects (it retries after 500 ms): its NOTIFY reaches no one, and only the
    // reconnect's catch-up wake delivers it before the (60 s) poll.
    await new Promise((r) => setTimeout(r, 150));
    const t1 = Date.now();
    const r1 = await append("s/a", 1);
    await sub.untilPosition(r1.position, DELIVER_WITHIN_MS);
    assert.ok(Date.now() - t1 < DELIVER_WITHIN_MS);

    const server = cluster!.servers[0]!;
    await server.waitForLog((l) => l["msg"] === "listen connection restored", 10_000);
    // LISTEN works again: a later append is woken by its NOTIFY.
    const t2 = Date.now();
    const r2 = await append("s/a", 2);
    await sub.untilPosition(r2.position, DELIVER_WITHIN_MS);
    assert.ok(Date.now() - t2 < DELIVER_WITHIN_MS);
    const warns = server.logs().filter((l) => String(l["msg"]).startsWith("listen connection lost"));
    assert.equal(warns.length, 1, JSON.stringify(warns));
    assert.ok(server.logs().some((l) => l["msg"] === "listen connection restored"));
  });
});
