/**
 * Request generators for fuzzing the gRPC edge (test/integration/fuzz.test.ts),
 * written at the wire level (./protoWire) so they can hold what a generated
 * encoder never writes.
 *
 * - `validRequest(method)`: a well-formed request with valid values, as a list
 *   of named fields (so one field can be swapped out);
 * - `MUTATIONS[method]`: changes that each make exactly one field invalid,
 *   with the field the INVALID_ARGUMENT must name;
 * - `garbageRequest(method)`: structurally random requests: every field
 *   optional, values from edge pools (int64 beyond 2^53, negative varints,
 *   invalid UTF-8, NUL, huge strings, unknown enum values), wrong wire types,
 *   unknown fields, duplicated and truncated fields.
 */
import { randomUUID } from "node:crypto";
import fc from "fast-check";
import { fBytes, fFixed32, fFixed64, fVarint, message, tag, varint, WIRE } from "./protoWire";

export type Method =
  | "Get"
  | "CompareAndSet"
  | "Delete"
  | "List"
  | "Lock"
  | "Unlock"
  | "RenewLock"
  | "AppendEvent"
  | "ReadStream"
  | "Subscribe";

export const METHODS: readonly Method[] = [
  "Get",
  "CompareAndSet",
  "Delete",
  "List",
  "Lock",
  "Unlock",
  "RenewLock",
  "AppendEvent",
  "ReadStream",
  "Subscribe",
];

export function methodPath(m: Method): string {
  const service =
    m === "Lock" || m === "Unlock" || m === "RenewLock"
      ? "LockService"
      : m === "AppendEvent" || m === "ReadStream" || m === "Subscribe"
        ? "EventService"
        : "KeyValueService";
  return `/agentstate.v1.${service}/${m}`;
}

export function isServerStreaming(m: Method): boolean {
  return m === "ReadStream" || m === "Subscribe";
}

/** A request as named, already encoded fields, in wire order. */
export type Fields = [name: string, bytes: Buffer][];

export const encode = (fields: Fields): Buffer => Buffer.concat(fields.map(([, b]) => b));

/** Replaces (or adds, or with `undefined` removes) the field called `name`. */
export function withField(fields: Fields, name: string, bytes: Buffer | undefined): Fields {
  const out = fields.filter(([n]) => n !== name);
  if (bytes !== undefined) out.push([name, bytes]);
  return out;
}

const INVALID_UTF8 = Buffer.from([0x6b, 0xff, 0xfe, 0xc0, 0x80]);
const MAX_SAFE = 2n ** 53n - 1n;

/** A protobuf Duration message body. */
export function duration(seconds: bigint | number, nanos: bigint | number = 0): Buffer {
  return message(seconds !== 0 ? fVarint(1, seconds) : undefined, nanos !== 0 ? fVarint(2, nanos) : undefined);
}

const durationMs = (ms: number) => duration(Math.floor(ms / 1000), (ms % 1000) * 1_000_000);

// ------------------------------------------------------------------ valid requests

const validNamespace = fc.constantFrom("fz", "fz.b", "fz-c0");
const validKey = fc.oneof(
  fc.constantFrom("k", "a/b", "ключ", "😀 emoji", "x".repeat(1024)),
  fc
    .string({ unit: "grapheme", minLength: 1, maxLength: 24 })
    .filter((s) => !s.includes("\u0000") && !s.includes("\uFFFD") && Buffer.byteLength(s) <= 1024),
);
const shortText = fc.string({ maxLength: 24 }).filter((s) => !s.includes("\u0000"));
const lockId = fc
  .tuple(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.integer({ min: 1, max: 1000 }))
  .map(([b, t]) => `${Buffer.from(b).toString("hex")}.${t}`);

const kvExpected = fc.oneof(
  fc.integer({ min: 1, max: 5 }).map((v) => message(fVarint(1, v))),
  fc.constant(message(fVarint(2, true))),
  fc.constant(message(fVarint(3, true))),
);

const fence = fc
  .tuple(validKey, fc.integer({ min: 1, max: 5 }))
  .map(([name, token]) => message(fBytes(1, name), fVarint(2, token)));

const eventData = fc
  .record({
    id: fc.oneof(fc.constant(""), fc.uuid()),
    type: fc.constantFrom("created", "t", "item_added"),
    data: fc.uint8Array({ maxLength: 32 }),
    meta: fc.dictionary(shortText, shortText, { maxKeys: 2 }),
  })
  .map((e) =>
    message(
      e.id ? fBytes(1, e.id) : undefined,
      fBytes(2, e.type),
      e.data.length ? fBytes(3, e.data) : undefined,
      ...Object.entries(e.meta).map(([k, v]) => fBytes(4, message(fBytes(1, k), fBytes(2, v)))),
    ),
  );

const streamExpected = fc.oneof(
  fc.constant(message(fVarint(1, true))),
  fc.constant(message(fVarint(2, true))),
  fc.constant(message(fVarint(3, true))),
  fc.integer({ min: 1, max: 5 }).map((v) => message(fVarint(4, v))),
);

function fields(...fs: ([string, Buffer] | undefined)[]): Fields {
  return fs.filter((f): f is [string, Buffer] => f !== undefined);
}

/** Valid requests: every field within its limits (outcomes may still be FAILED_PRECONDITION etc.). */
export function validRequest(m: Method): fc.Arbitrary<Fields> {
  switch (m) {
    case "Get":
      return fc
        .tuple(validNamespace, validKey, fc.integer({ min: 0, max: 2 }))
        .map(([ns, key, c]) =>
          fields(["namespace", fBytes(1, ns)], ["key", fBytes(2, key)], ["consistency", fVarint(3, c)]),
        );
    case "CompareAndSet":
      return fc
        .tuple(
          validNamespace,
          validKey,
          kvExpected,
          fc.uint8Array({ maxLength: 64 }),
          fc.option(fc.integer({ min: 1, max: 3_600_000 })),
          fc.option(fc.uuid()),
          fc.oneof({ weight: 4, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fence }),
        )
        .map(([ns, key, exp, value, ttl, idem, f]) =>
          fields(
            ["namespace", fBytes(1, ns)],
            ["key", fBytes(2, key)],
            ["expected", fBytes(3, exp)],
            ["value", fBytes(4, value)],
            ["content_type", fBytes(5, "text/plain")],
            ttl === null ? undefined : ["ttl", fBytes(6, durationMs(ttl))],
            idem === null ? undefined : ["idempotency_key", fBytes(7, idem)],
            f === null ? undefined : ["fence", fBytes(8, f)],
          ),
        );
    case "Delete":
      return fc
        .tuple(validNamespace, validKey, kvExpected, fc.option(fc.uuid()))
        .map(([ns, key, exp, idem]) =>
          fields(
            ["namespace", fBytes(1, ns)],
            ["key", fBytes(2, key)],
            ["expected", fBytes(3, exp)],
            idem === null ? undefined : ["idempotency_key", fBytes(4, idem)],
          ),
        );
    case "List":
      return fc
        .tuple(validNamespace, fc.constantFrom("", "a", "k"), fc.integer({ min: 0, max: 1000 }), fc.boolean())
        .map(([ns, prefix, limit, values]) =>
          fields(
            ["namespace", fBytes(1, ns)],
            ["prefix", fBytes(2, prefix)],
            ["limit", fVarint(3, limit)],
            ["include_values", fVarint(5, values)],
          ),
        );
    case "Lock":
      return fc
        .tuple(validNamespace, validKey, fc.integer({ min: 1, max: 5000 }), fc.integer({ min: 0, max: 200 }), shortText)
        .map(([ns, name, ttl, wait, owner]) =>
          fields(
            ["namespace", fBytes(1, ns)],
            ["name", fBytes(2, name)],
            ["ttl", fBytes(3, durationMs(ttl))],
            ["wait", fBytes(4, durationMs(wait))],
            ["owner", fBytes(5, owner)],
          ),
        );
    case "Unlock":
      return fc
        .tuple(validNamespace, validKey, lockId)
        .map(([ns, name, id]) =>
          fields(["namespace", fBytes(1, ns)], ["name", fBytes(2, name)], ["lock_id", fBytes(3, id)]),
        );
    case "RenewLock":
      return fc
        .tuple(validNamespace, validKey, lockId, fc.integer({ min: 1, max: 5000 }))
        .map(([ns, name, id, ttl]) =>
          fields(
            ["namespace", fBytes(1, ns)],
            ["name", fBytes(2, name)],
            ["lock_id", fBytes(3, id)],
            ["ttl", fBytes(4, durationMs(ttl))],
          ),
        );
    case "AppendEvent":
      return fc
        .tuple(validNamespace, validKey, streamExpected, fc.array(eventData, { minLength: 1, maxLength: 3 }))
        .map(([ns, stream, exp, evs]) =>
          fields(
            ["namespace", fBytes(1, ns)],
            ["stream", fBytes(2, stream)],
            ["expected", fBytes(3, exp)],
            ["events", Buffer.concat(evs.map((e) => fBytes(4, e)))],
          ),
        );
    case "ReadStream":
      return fc
        .tuple(
          validNamespace,
          validKey,
          fc.integer({ min: 0, max: 5 }),
          fc.integer({ min: 0, max: 2 }),
          fc.integer({ min: 0, max: 10 }),
        )
        .map(([ns, stream, from, dir, limit]) =>
          fields(
            ["namespace", fBytes(1, ns)],
            ["stream", fBytes(2, stream)],
            ["from_version", fVarint(3, from)],
            ["direction", fVarint(4, dir)],
            ["limit", fVarint(5, limit)],
          ),
        );
    case "Subscribe":
      return fc
        .tuple(
          validNamespace,
          fc.oneof(
            validKey.map((s) => fBytes(2, s)),
            fc.constantFrom("", "s").map((p) => fBytes(3, p)),
          ),
          fc.integer({ min: 0, max: 1000 }),
        )
        .map(([ns, target, after]) =>
          fields(["namespace", fBytes(1, ns)], ["target", target], ["after_position", fVarint(4, after)]),
        );
  }
}

// ------------------------------------------------------------------ one-field mutations

export interface Mutation {
  /** What is wrong, for messages. */
  what: string;
  /** The field INVALID_ARGUMENT must name (details and the agentstate-field trailer). */
  field: string;
  apply: (f: Fields) => Fields;
  /** Large payload: run once, not in random loops. */
  heavy?: boolean;
}

const set = (name: string, bytes: Buffer | undefined) => (f: Fields) => withField(f, name, bytes);

function namespaceMutations(): Mutation[] {
  return [
    { what: "namespace empty", field: "namespace", apply: set("namespace", undefined) },
    { what: "namespace upper case and space", field: "namespace", apply: set("namespace", fBytes(1, "Bad NS")) },
    { what: "namespace 64 characters", field: "namespace", apply: set("namespace", fBytes(1, "a".repeat(64))) },
    { what: "namespace invalid UTF-8", field: "namespace", apply: set("namespace", fBytes(1, INVALID_UTF8)) },
  ];
}

/** Keys, lock names, stream names: 1..1024 bytes of valid UTF-8 without NUL. */
function keyMutations(name: string, no: number): Mutation[] {
  return [
    { what: `${name} empty`, field: name, apply: set(name, undefined) },
    { what: `${name} 1025 bytes`, field: name, apply: set(name, fBytes(no, "é".repeat(512) + "x")) },
    { what: `${name} with NUL`, field: name, apply: set(name, fBytes(no, "a\u0000b")) },
    { what: `${name} invalid UTF-8`, field: name, apply: set(name, fBytes(no, INVALID_UTF8)) },
  ];
}

function durationMutations(name: string, no: number, maxSeconds: number, allowZero: boolean): Mutation[] {
  const m: Mutation[] = [
    { what: `${name} negative seconds`, field: name, apply: set(name, fBytes(no, duration(-1))) },
    { what: `${name} negative nanos`, field: name, apply: set(name, fBytes(no, duration(0, -5))) },
    { what: `${name} nanos 10^9`, field: name, apply: set(name, fBytes(no, duration(1, 1_000_000_000))) },
    { what: `${name} over the limit`, field: name, apply: set(name, fBytes(no, duration(maxSeconds + 1))) },
    {
      what: `${name}.seconds beyond 2^53`,
      field: `${name}.seconds`,
      apply: set(name, fBytes(no, duration(MAX_SAFE + 1n))),
    },
    {
      what: `${name}.seconds -2^63`,
      field: `${name}.seconds`,
      apply: set(name, fBytes(no, duration(-(2n ** 63n)))),
    },
  ];
  if (!allowZero) m.push({ what: `${name} zero`, field: name, apply: set(name, fBytes(no, duration(0))) });
  return m;
}

function int64Mutations(name: string, no: number, invalidSmall: number[]): Mutation[] {
  return [
    ...invalidSmall.map((v) => ({ what: `${name} ${v}`, field: name, apply: set(name, fVarint(no, v)) })),
    { what: `${name} 2^53`, field: name, apply: set(name, fVarint(no, MAX_SAFE + 1n)) },
    { what: `${name} 2^63-1`, field: name, apply: set(name, fVarint(no, 2n ** 63n - 1n)) },
    { what: `${name} -2^63`, field: name, apply: set(name, fVarint(no, -(2n ** 63n))) },
  ];
}

const LONG = "x".repeat(256);

function kvWriteMutations(expectedNo: number, idemNo: number, fenceNo: number): Mutation[] {
  const exp = (b: Buffer) => set("expected", fBytes(expectedNo, b));
  return [
    { what: "expected unset", field: "expected", apply: set("expected", undefined) },
    { what: "expected empty", field: "expected", apply: exp(message()) },
    { what: "expected.version 0", field: "expected.version", apply: exp(message(fVarint(1, 0))) },
    { what: "expected.version -1", field: "expected.version", apply: exp(message(fVarint(1, -1))) },
    { what: "expected.version 2^53", field: "expected.version", apply: exp(message(fVarint(1, MAX_SAFE + 1n))) },
    { what: "expected.absent false", field: "expected.absent", apply: exp(message(fVarint(2, false))) },
    { what: "expected.any false", field: "expected.any", apply: exp(message(fVarint(3, false))) },
    {
      what: "expected version and any",
      field: "expected",
      apply: exp(message(fVarint(1, 1), fVarint(3, true))),
    },
    {
      what: "idempotency_key 256 bytes",
      field: "idempotency_key",
      apply: set("idempotency_key", fBytes(idemNo, LONG)),
    },
    {
      what: "idempotency_key with NUL",
      field: "idempotency_key",
      apply: set("idempotency_key", fBytes(idemNo, "a\u0000")),
    },
    {
      what: "fence.lock_name empty",
      field: "fence.lock_name",
      apply: set("fence", fBytes(fenceNo, message(fVarint(2, 1)))),
    },
    {
      what: "fence.token 0",
      field: "fence.token",
      apply: set("fence", fBytes(fenceNo, message(fBytes(1, "l")))),
    },
    {
      what: "fence.token -5",
      field: "fence.token",
      apply: set("fence", fBytes(fenceNo, message(fBytes(1, "l"), fVarint(2, -5)))),
    },
    {
      what: "fence.token 2^63-1",
      field: "fence.token",
      apply: set("fence", fBytes(fenceNo, message(fBytes(1, "l"), fVarint(2, 2n ** 63n - 1n)))),
    },
  ];
}

export const MUTATIONS: Record<Method, Mutation[]> = {
  Get: [
    ...namespaceMutations(),
    ...keyMutations("key", 2),
    { what: "consistency 3", field: "consistency", apply: set("consistency", fVarint(3, 3)) },
    { what: "consistency -1", field: "consistency", apply: set("consistency", fVarint(3, -1)) },
    { what: "consistency 2^31-1", field: "consistency", apply: set("consistency", fVarint(3, 2 ** 31 - 1)) },
  ],
  CompareAndSet: [
    ...namespaceMutations(),
    ...keyMutations("key", 2),
    ...kvWriteMutations(3, 7, 8),
    {
      what: "value 1 MiB + 1",
      field: "value",
      apply: set("value", fBytes(4, Buffer.alloc(1024 * 1024 + 1, 0x61))),
      heavy: true,
    },
    { what: "content_type 256 bytes", field: "content_type", apply: set("content_type", fBytes(5, LONG)) },
    { what: "content_type with NUL", field: "content_type", apply: set("content_type", fBytes(5, "a\u0000")) },
    {
      what: "content_type invalid UTF-8",
      field: "content_type",
      apply: set("content_type", fBytes(5, INVALID_UTF8)),
    },
    ...durationMutations("ttl", 6, 10 * 365 * 24 * 3600, false),
  ],
  Delete: [...namespaceMutations(), ...keyMutations("key", 2), ...kvWriteMutations(3, 4, 5)],
  List: [
    ...namespaceMutations(),
    { what: "limit -1", field: "limit", apply: set("limit", fVarint(3, -1)) },
    { what: "limit 1001", field: "limit", apply: set("limit", fVarint(3, 1001)) },
    { what: "prefix 1025 bytes", field: "prefix", apply: set("prefix", fBytes(2, "p".repeat(1025))) },
    { what: "prefix with NUL", field: "prefix", apply: set("prefix", fBytes(2, "a\u0000")) },
    { what: "prefix invalid UTF-8", field: "prefix", apply: set("prefix", fBytes(2, INVALID_UTF8)) },
    { what: "page_token garbage", field: "page_token", apply: set("page_token", fBytes(4, "%%%not-a-token")) },
    {
      what: "page_token of another namespace",
      field: "page_token",
      apply: set(
        "page_token",
        fBytes(4, Buffer.from(JSON.stringify({ n: "other", p: "", k: "a" })).toString("base64url")),
      ),
    },
  ],
  Lock: [
    ...namespaceMutations(),
    ...keyMutations("name", 2),
    { what: "ttl unset", field: "ttl", apply: set("ttl", undefined) },
    ...durationMutations("ttl", 3, 3600, false),
    ...durationMutations("wait", 4, 300, true),
    { what: "owner 256 bytes", field: "owner", apply: set("owner", fBytes(5, LONG)) },
    { what: "owner invalid UTF-8", field: "owner", apply: set("owner", fBytes(5, INVALID_UTF8)) },
  ],
  Unlock: [
    ...namespaceMutations(),
    ...keyMutations("name", 2),
    { what: "lock_id empty", field: "lock_id", apply: set("lock_id", undefined) },
    { what: "lock_id malformed", field: "lock_id", apply: set("lock_id", fBytes(3, "nonsense")) },
    {
      what: "lock_id token 2^60",
      field: "lock_id",
      apply: set("lock_id", fBytes(3, `${"a".repeat(32)}.${2n ** 60n}`)),
    },
  ],
  RenewLock: [
    ...namespaceMutations(),
    ...keyMutations("name", 2),
    { what: "lock_id empty", field: "lock_id", apply: set("lock_id", undefined) },
    { what: "lock_id malformed", field: "lock_id", apply: set("lock_id", fBytes(3, "a.b.c")) },
    { what: "ttl unset", field: "ttl", apply: set("ttl", undefined) },
    ...durationMutations("ttl", 4, 3600, false),
  ],
  AppendEvent: [
    ...namespaceMutations(),
    ...keyMutations("stream", 2),
    { what: "expected unset", field: "expected", apply: set("expected", undefined) },
    {
      what: "expected.version 0",
      field: "expected.version",
      apply: set("expected", fBytes(3, message(fVarint(4, 0)))),
    },
    {
      what: "expected.version 2^60",
      field: "expected.version",
      apply: set("expected", fBytes(3, message(fVarint(4, 2n ** 60n)))),
    },
    {
      what: "expected.no_stream false",
      field: "expected.no_stream",
      apply: set("expected", fBytes(3, message(fVarint(2, false)))),
    },
    { what: "events empty", field: "events", apply: set("events", undefined) },
    {
      what: "events[0].type empty",
      field: "events[0].type",
      apply: set("events", fBytes(4, message(fBytes(3, "data")))),
    },
    {
      what: "events[0].type 256 bytes",
      field: "events[0].type",
      apply: set("events", fBytes(4, message(fBytes(2, LONG)))),
    },
    {
      what: "events[0].type invalid UTF-8",
      field: "events[0].type",
      apply: set("events", fBytes(4, message(fBytes(2, INVALID_UTF8)))),
    },
    {
      what: "events[0].id not a UUID",
      field: "events[0].id",
      apply: set("events", fBytes(4, message(fBytes(1, "not-a-uuid"), fBytes(2, "t")))),
    },
    {
      what: "events[1].id repeats events[0].id",
      field: "events[1].id",
      apply: (f) => {
        const id = randomUUID();
        const e = fBytes(4, message(fBytes(1, id), fBytes(2, "t")));
        return withField(f, "events", Buffer.concat([e, e]));
      },
    },
    {
      what: "1001 events",
      field: "events",
      apply: set("events", Buffer.concat(Array.from({ length: 1001 }, () => fBytes(4, message(fBytes(2, "t")))))),
      heavy: true,
    },
    {
      what: "fence.token 0",
      field: "fence.token",
      apply: set("fence", fBytes(5, message(fBytes(1, "l")))),
    },
  ],
  ReadStream: [
    ...namespaceMutations(),
    ...keyMutations("stream", 2),
    { what: "direction 7", field: "direction", apply: set("direction", fVarint(4, 7)) },
    { what: "direction -1", field: "direction", apply: set("direction", fVarint(4, -1)) },
    ...int64Mutations("from_version", 3, [-1]),
    ...int64Mutations("limit", 5, [-1]),
  ],
  Subscribe: [
    ...namespaceMutations(),
    { what: "target unset", field: "target", apply: set("target", undefined) },
    {
      what: "stream and stream_prefix",
      field: "target",
      apply: set("target", message(fBytes(2, "s"), fBytes(3, "s"))),
    },
    { what: "stream empty", field: "stream", apply: set("target", fBytes(2, "")) },
    { what: "stream invalid UTF-8", field: "stream", apply: set("target", fBytes(2, INVALID_UTF8)) },
    {
      what: "stream_prefix invalid UTF-8",
      field: "stream_prefix",
      apply: set("target", fBytes(3, INVALID_UTF8)),
    },
    ...int64Mutations("after_position", 4, [-1]),
  ],
};

// ------------------------------------------------------------------ structurally random requests

type Kind = "namespace" | "string" | "key" | "bytes" | "int64" | "int32" | "bool" | "enum" | "msg";

/** Field numbers and kinds of each request (nested messages as "msg", filled with random fields). */
const SHAPES: Record<Method, [number, Kind][]> = {
  Get: [[1, "namespace"], [2, "key"], [3, "enum"]],
  CompareAndSet: [[1, "namespace"], [2, "key"], [3, "msg"], [4, "bytes"], [5, "string"], [6, "msg"], [7, "string"], [8, "msg"]],
  Delete: [[1, "namespace"], [2, "key"], [3, "msg"], [4, "string"], [5, "msg"]],
  List: [[1, "namespace"], [2, "key"], [3, "int32"], [4, "string"], [5, "bool"]],
  Lock: [[1, "namespace"], [2, "key"], [3, "msg"], [4, "msg"], [5, "string"]],
  Unlock: [[1, "namespace"], [2, "key"], [3, "string"]],
  RenewLock: [[1, "namespace"], [2, "key"], [3, "string"], [4, "msg"]],
  AppendEvent: [[1, "namespace"], [2, "key"], [3, "msg"], [4, "msg"], [4, "msg"], [5, "msg"]],
  ReadStream: [[1, "namespace"], [2, "key"], [3, "int64"], [4, "enum"], [5, "int64"]],
  Subscribe: [[1, "namespace"], [2, "key"], [3, "key"], [4, "int64"]],
}; // prettier-ignore

const int64Edge = fc.oneof(
  fc.constantFrom(
    0n,
    1n,
    -1n,
    MAX_SAFE,
    MAX_SAFE + 1n,
    -MAX_SAFE,
    -MAX_SAFE - 1n,
    2n ** 63n - 1n,
    -(2n ** 63n),
    2n ** 64n - 1n,
  ),
  fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
  fc.integer({ min: -3, max: 100 }).map(BigInt),
);
const int32Edge = fc.oneof(
  fc.constantFrom(0, 1, -1, 2 ** 31 - 1, -(2 ** 31), 1000, 1001),
  fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
);
const stringEdge: fc.Arbitrary<string | Uint8Array> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom("fz", "k", "s", "") },
  { weight: 2, arbitrary: fc.string({ maxLength: 20 }) },
  { weight: 2, arbitrary: fc.string({ unit: "binary", maxLength: 20 }) },
  { weight: 1, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 12 }) }, // often invalid UTF-8
  { weight: 1, arbitrary: fc.constantFrom("a\u0000b", "\uFFFD", "x".repeat(1025), "é".repeat(600), "UPPER") },
);

/** Any field encoding (for random nested messages and unknown fields). */
const anyField = (no: fc.Arbitrary<number>) =>
  fc.oneof(
    fc.tuple(no, int64Edge).map(([n, v]) => fVarint(n, v)),
    fc.tuple(no, stringEdge).map(([n, v]) => fBytes(n, v)),
    fc.tuple(no, fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })).map(([n, v]) => fFixed64(n, v)),
    fc.tuple(no, fc.integer({ min: 0, max: 2 ** 32 - 1 })).map(([n, v]) => fFixed32(n, v)),
  );

const nestedMessage: fc.Arbitrary<Buffer> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.array(anyField(fc.integer({ min: 1, max: 5 })), { maxLength: 4 }).map((fs) => Buffer.concat(fs)),
  },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 24 }).map((b) => Buffer.from(b)) },
);

function fieldOf(no: number, kind: Kind): fc.Arbitrary<Buffer> {
  switch (kind) {
    case "namespace":
      // Mostly valid, so that the other fields get validated too.
      return fc
        .oneof(
          { weight: 4, arbitrary: fc.constant("fz") as fc.Arbitrary<string | Uint8Array> },
          { weight: 1, arbitrary: stringEdge },
        )
        .map((v) => fBytes(no, v));
    case "string":
    case "key":
      return stringEdge.map((v) => fBytes(no, v));
    case "bytes":
      return fc.uint8Array({ maxLength: 64 }).map((v) => fBytes(no, v));
    case "int64":
      return int64Edge.map((v) => fVarint(no, v));
    case "int32":
      return int32Edge.map((v) => fVarint(no, v));
    case "bool":
      return fc.constantFrom(0n, 1n, 2n, 2n ** 64n - 1n).map((v) => fVarint(no, v));
    case "enum":
      return fc
        .oneof(fc.integer({ min: -2, max: 5 }), fc.constantFrom(2 ** 31 - 1, -(2 ** 31)))
        .map((v) => fVarint(no, v));
    case "msg":
      return nestedMessage.map((v) => fBytes(no, v));
  }
}

/** A wrong wire type for field `no` (e.g. a varint where a string belongs). */
const wrongWire = (no: number) =>
  fc.oneof(
    int64Edge.map((v) => fVarint(no, v)),
    fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map((v) => fFixed64(no, v)),
    fc.integer({ min: 0, max: 2 ** 32 - 1 }).map((v) => fFixed32(no, v)),
    fc.uint8Array({ maxLength: 8 }).map((v) => fBytes(no, v)),
    // Groups (wire types 3/4) are not part of proto3: a start group without an end.
    fc.constant(tag(no, 3)),
  );

/** Structurally random requests for `m`, including undecodable ones. */
export function garbageRequest(m: Method): fc.Arbitrary<Buffer> {
  const shape = SHAPES[m];
  const known = fc.tuple(
    ...shape.map(([no, kind]) =>
      fc.option(fc.oneof({ weight: 15, arbitrary: fieldOf(no, kind) }, { weight: 1, arbitrary: wrongWire(no) })),
    ),
  );
  const unknown = fc.array(anyField(fc.integer({ min: 6, max: 2 ** 29 - 1 })), { maxLength: 3 });
  return fc
    .tuple(
      known,
      unknown,
      fc.oneof({ weight: 12, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 8 }) }),
      fc.boolean(),
    )
    .map(([fs, extra, cut, shuffleUnknownFirst]) => {
      const body = fs.filter((f): f is Buffer => f !== null);
      let b = shuffleUnknownFirst ? Buffer.concat([...extra, ...body]) : Buffer.concat([...body, ...extra]);
      if (cut !== null && b.length > 0) b = b.subarray(0, Math.max(0, b.length - cut)); // truncated
      return b;
    });
}

/** Random bytes, some of them a varint length running past the end. */
export const randomBytesRequest: fc.Arbitrary<Buffer> = fc.oneof(
  fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
  fc
    .tuple(fc.integer({ min: 1, max: 15 }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }))
    .map(([no, len]) => Buffer.concat([tag(no, WIRE.bytes), varint(len), Buffer.from("abc")])),
);
