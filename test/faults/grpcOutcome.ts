/**
 * How a failed call is counted in a history. UNAVAILABLE, DEADLINE_EXCEEDED,
 * CANCELLED and INTERNAL (and anything else unexpected) are indeterminate: the
 * effect may or may not have happened. Codes that the service answers only
 * before writing anything (INVALID_ARGUMENT, FAILED_PRECONDITION, ...) are
 * definite failures. Every code seen is counted, so a report shows them.
 */
import { status, type ServiceError } from "@grpc/grpc-js";

export const EXPECTED_INDETERMINATE = new Set<number>([status.UNAVAILABLE, status.DEADLINE_EXCEEDED, status.CANCELLED]);

export interface CallError {
  code: number;
  /** e.g. "UNAVAILABLE: database unavailable" */
  text: string;
  reason: string | undefined;
}

export function callError(e: unknown): CallError {
  const err = e as Partial<ServiceError>;
  const code = typeof err.code === "number" ? err.code : status.UNKNOWN;
  const reason = err.metadata?.get("agentstate-reason")[0];
  return {
    code,
    text: `${status[code] ?? code}: ${err.details ?? (e as Error).message ?? String(e)}`,
    reason: typeof reason === "string" ? reason : undefined,
  };
}

/** Counts of status codes (by name) and a few samples of unexpected ones. */
export class CodeCounter {
  readonly counts: Record<string, number> = {};
  /** INTERNAL, UNKNOWN and other codes a healthy service should never answer under faults. */
  readonly unexpected: string[] = [];

  constructor(private readonly allowed: ReadonlySet<number>) {}

  ok(): void {
    this.counts.OK = (this.counts.OK ?? 0) + 1;
  }

  add(e: CallError): void {
    const name = status[e.code] ?? String(e.code);
    this.counts[name] = (this.counts[name] ?? 0) + 1;
    if (!this.allowed.has(e.code) && this.unexpected.length < 50) this.unexpected.push(e.text);
  }

  merge(into: Record<string, number>): void {
    for (const [k, v] of Object.entries(this.counts)) into[k] = (into[k] ?? 0) + v;
  }
}
