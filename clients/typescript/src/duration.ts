import type { Duration } from "./gen/google/protobuf/duration";

/** A protobuf Duration of `ms` milliseconds. */
export function durationFromMs(ms: number): Duration {
  const seconds = Math.trunc(ms / 1000);
  return { seconds, nanos: Math.round((ms - seconds * 1000) * 1_000_000) };
}

/** Milliseconds of a protobuf Duration (0 when unset). */
export function durationToMs(d: Partial<Duration> | undefined): number {
  return (d?.seconds ?? 0) * 1000 + (d?.nanos ?? 0) / 1_000_000;
}
