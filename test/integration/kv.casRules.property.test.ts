/**
 * src/domain/casRules.ts is the specification of compare-and-set; production
 * decides in plpgsql (agentstate_kv_write). This property test holds the SQL
 * to the specification: fast-check drives random sequences of puts and
 * deletes (conditions any, absent, the current version, wrong versions;
 * sometimes a TTL, sometimes one that expires at once; sometimes several keys
 * in one batch) through the real PostgresKvStore against real Postgres, and
 * compares every outcome with a model that decides only by casRules.
 */
import * as assert from "node:assert/strict";
import * as path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import fc from "fast-check";
import type { Pool } from "pg";
import { expectationHolds, isExpired, nextVersion } from "../../src/domain/casRules";
import type { Expected, Item, WriteCommand, WriteOutcome } from "../../src/domain/types";
import { createPool } from "../../src/store/postgres/createPool";
import { migrate } from "../../src/store/postgres/migrate";
import { PostgresKvStore } from "../../src/store/postgres/PostgresKvStore";
import { getTestEnv } from "../support/TestEnv";

const MIGRATIONS_DIR = path.resolve(__dirname, "../../migrations");
const KEYS = ["a", "b", "c"] as const;
/** A TTL that ends before the next step (the step waits it out) and one that outlives the test. */
const TTL_AT_ONCE_MS = 1;
const TTL_LONG_MS = 3_600_000;

/** `current`: the model's current version of the key (or 1 when absent), resolved when the step runs. */
type ExpectedSpec = Expected | { kind: "current" } | { kind: "offBy"; delta: number };

interface WriteSpec {
  key: (typeof KEYS)[number];
  op: "put" | "delete";
  expected: ExpectedSpec;
  ttlMs: number | undefined;
}

/** One step: a single write, or writes to distinct keys sent together (one batch). */
type Step = WriteSpec[];

const expectedArb: fc.Arbitrary<ExpectedSpec> = fc.oneof(
  fc.constant({ kind: "any" as const }),
  fc.constant({ kind: "absent" as const }),
  fc.constant({ kind: "current" as const }),
  fc.constant({ kind: "current" as const }),
  fc.integer({ min: -2, max: 2 }).map((delta) => ({ kind: "offBy" as const, delta })),
  fc.integer({ min: 0, max: 6 }).map((version) => ({ kind: "version" as const, version })),
);

const writeArb: fc.Arbitrary<WriteSpec> = fc.record({
  key: fc.constantFrom(...KEYS),
  op: fc.oneof(
    { weight: 3, arbitrary: fc.constant("put" as const) },
    { weight: 1, arbitrary: fc.constant("delete" as const) },
  ),
  expected: expectedArb,
  ttlMs: fc.oneof(
    { weight: 6, arbitrary: fc.constant(undefined) },
    { weight: 1, arbitrary: fc.constant(TTL_AT_ONCE_MS) },
    { weight: 1, arbitrary: fc.constant(TTL_LONG_MS) },
  ),
});

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 4, arbitrary: writeArb.map((w) => [w]) },
  { weight: 1, arbitrary: fc.uniqueArray(writeArb, { minLength: 2, maxLength: 3, selector: (w) => w.key }) },
);

/** The model: per key, the item as the specification says it is (or undefined: absent). */
class Model {
  private readonly items = new Map<string, Item>();

  /** The key's current item, as casRules reads it: an expired item is absent. */
  current(key: string): Item | undefined {
    const item = this.items.get(key);
    return item !== undefined && isExpired(item, new Date()) ? undefined : item;
  }

  resolve(key: string, spec: ExpectedSpec): Expected {
    const version = this.current(key)?.version ?? 1;
    if (spec.kind === "current") return { kind: "version", version };
    if (spec.kind === "offBy") return { kind: "version", version: Math.max(0, version + spec.delta) };
    return spec;
  }

  /** What the specification says the write's outcome is (applied, and the version of the item reported). */
  decide(cmd: WriteCommand): { applied: boolean; version: number | undefined; nextItemVersion: number | undefined } {
    const cur = this.current(cmd.key);
    if (!expectationHolds(cmd.expected, cur))
      return { applied: false, version: cur?.version, nextItemVersion: cur?.version };
    if (cmd.op === "put") {
      const v = nextVersion(cur);
      return { applied: true, version: v, nextItemVersion: v };
    }
    return { applied: true, version: cur?.version, nextItemVersion: undefined };
  }

  /** Takes the store's outcome as the new state of the key (its versions were checked against decide first). */
  record(cmd: WriteCommand, outcome: WriteOutcome): void {
    if (!outcome.applied) return;
    if (cmd.op === "put" && outcome.item !== undefined) this.items.set(cmd.key, outcome.item);
    else this.items.delete(cmd.key);
  }
}

describe("KV writes: agentstate_kv_write decides as src/domain/casRules.ts specifies (property, real Postgres)", function () {
  this.timeout(300_000);
  let pool: Pool;
  let store: PostgresKvStore;
  let run = 0;

  before(async () => {
    const url = await (await getTestEnv()).freshDatabase("cas_rules");
    pool = createPool({ connectionString: url, max: 4, statementTimeoutMs: 5000 });
    await migrate(pool, MIGRATIONS_DIR);
    store = new PostgresKvStore(pool, { batchMax: 64, batchesInFlight: 1, batchesMax: 4 });
  });
  after(async () => {
    await pool?.end();
  });

  it("every outcome (applied, version of the item reported) is the one casRules gives, step after step", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(stepArb, { minLength: 1, maxLength: 25 }), async (steps) => {
        const namespace = `p${++run}`;
        const model = new Model();
        for (const step of steps) {
          const cmds: WriteCommand[] = step.map((w) => {
            const base = {
              namespace,
              key: w.key,
              expected: model.resolve(w.key, w.expected),
              idempotencyKey: undefined,
              fence: undefined,
            };
            return w.op === "put"
              ? { ...base, op: "put", value: Buffer.from(`${namespace}/${w.key}`), contentType: "", ttlMs: w.ttlMs }
              : { ...base, op: "delete" };
          });
          const want = cmds.map((c) => model.decide(c));
          const got = await Promise.all(cmds.map((c) => store.write(c)));
          got.forEach((outcome, i) => {
            const cmd = cmds[i]!;
            assert.deepEqual(
              { applied: outcome.applied, version: outcome.item?.version, replayed: outcome.replayed },
              { applied: want[i]!.applied, version: want[i]!.version, replayed: false },
              `${cmd.op} ${cmd.key} expecting ${JSON.stringify(cmd.expected)}`,
            );
            if (outcome.applied && cmd.op === "put") {
              assert.equal(outcome.item!.expireTime !== undefined, cmd.ttlMs !== undefined, "expiry set iff a TTL was");
            }
            model.record(cmd, outcome);
          });
          // A TTL that expires at once has ended before the next step.
          if (cmds.some((c) => c.op === "put" && c.ttlMs === TTL_AT_ONCE_MS)) await sleep(5);
        }
        // And the truth read back agrees with the model at the end.
        for (const key of KEYS) {
          const read = await store.get(namespace, key);
          assert.equal(read.item?.version, model.current(key)?.version, `final version of ${key}`);
        }
      }),
      { numRuns: 300 },
    );
  });
});
