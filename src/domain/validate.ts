/**
 * Input rules for names, keys, values and durations. Every check throws an
 * InvalidArgumentError naming the request field and the limit, so the edge can
 * reject bad input before anything is written (guarantee 6).
 */
import { InvalidArgumentError } from "../errors/errors";
import type { Limits } from "./limits";

const NAMESPACE_RE = /^[a-z0-9][a-z0-9._-]{0,62}$/;

export function validateNamespace(field: string, value: string): string {
  if (value === "") throw new InvalidArgumentError(field, "is required");
  if (!NAMESPACE_RE.test(value)) {
    throw new InvalidArgumentError(field, "must match [a-z0-9][a-z0-9._-]{0,62} (1..63 characters)");
  }
  return value;
}

/** Keys, lock names and stream names share these rules. */
export function validateKey(field: string, value: string, limits: Limits): string {
  if (value === "") throw new InvalidArgumentError(field, "must not be empty");
  const bytes = Buffer.byteLength(value, "utf8");
  if (bytes > limits.maxKeyBytes) {
    throw new InvalidArgumentError(field, `is ${bytes} bytes, the limit is ${limits.maxKeyBytes} bytes`);
  }
  if (value.includes("\u0000")) throw new InvalidArgumentError(field, "must not contain NUL");
  // Invalid UTF-8 is refused while decoding (src/grpc/decodeGuard.ts); U+FFFD itself is valid text.
  return value;
}

/** Optional short string (content type, idempotency key, owner): at most `max` bytes, no NUL. */
export function validateShortString(field: string, value: string, max: number): string {
  const bytes = Buffer.byteLength(value, "utf8");
  if (bytes > max) throw new InvalidArgumentError(field, `is ${bytes} bytes, the limit is ${max} bytes`);
  if (value.includes("\u0000")) throw new InvalidArgumentError(field, "must not contain NUL");
  return value;
}

export function validateBytes(field: string, value: Uint8Array, max: number): Buffer {
  if (value.length > max) {
    throw new InvalidArgumentError(field, `is ${value.length} bytes, the limit is ${max} bytes`);
  }
  return Buffer.from(value.buffer, value.byteOffset, value.length);
}

/** A protobuf Duration as milliseconds. Negative, fractional-millisecond or over-limit values are refused. */
export function validateDurationMs(
  field: string,
  d: { seconds: number; nanos: number },
  opts: { maxSeconds: number; allowZero: boolean },
): number {
  if (!Number.isSafeInteger(d.seconds) || !Number.isInteger(d.nanos)) {
    throw new InvalidArgumentError(field, "is not a valid duration");
  }
  if (d.seconds < 0 || d.nanos < 0) throw new InvalidArgumentError(field, "must not be negative");
  if (d.nanos > 999_999_999) throw new InvalidArgumentError(field, "nanos must be at most 999999999");
  if (d.seconds > opts.maxSeconds) {
    throw new InvalidArgumentError(field, `must be at most ${opts.maxSeconds} seconds`);
  }
  const ms = d.seconds * 1000 + Math.floor(d.nanos / 1_000_000);
  if (ms === 0 && !opts.allowZero) {
    throw new InvalidArgumentError(field, "must be at least 1 millisecond");
  }
  return ms;
}

export function validateEnum(field: string, value: number, allowed: readonly number[]): number {
  if (!allowed.includes(value)) {
    throw new InvalidArgumentError(field, `unknown value ${value}; allowed: ${allowed.join(", ")}`);
  }
  return value;
}
