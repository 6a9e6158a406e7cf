/**
 * Request checks shared by the services' codecs: the namespace and name a
 * request addresses, fences, integers with a lower bound. Each throws
 * InvalidArgumentError naming the field, before anything reaches the domain;
 * the rules for names and sizes themselves live in domain/validate.
 */
import type { Limits } from "../../domain/limits";
import type { Fence } from "../../domain/types";
import { validateKey, validateNamespace } from "../../domain/validate";
import { InvalidArgumentError } from "../../errors/errors";
import type { Fence as PbFence } from "../../gen/agentstate/v1/common";

/** The namespace, then the key, lock or stream name (`field`) a request addresses. */
export function decodeAddress(namespace: string, field: string, name: string, limits: Limits): void {
  validateNamespace("namespace", namespace);
  validateKey(field, name, limits);
}

/** A version, token or position that counts from 1. */
export function requirePositive(field: string, v: number): number {
  if (!Number.isSafeInteger(v) || v < 1) throw new InvalidArgumentError(field, "must be >= 1");
  return v;
}

/** A version, position or count where 0 has a meaning of its own (`note` says which, e.g. "0: no limit"). */
export function requireNonNegative(field: string, v: number, note?: string): number {
  if (!Number.isSafeInteger(v) || v < 0) {
    throw new InvalidArgumentError(field, note === undefined ? "must be >= 0" : `must be >= 0 (${note})`);
  }
  return v;
}

/** An optional fence {lock name, token} on a write or an append. */
export function decodeFence(field: string, f: PbFence | undefined, limits: Limits): Fence | undefined {
  if (f === undefined) return undefined;
  validateKey(`${field}.lock_name`, f.lockName, limits);
  requirePositive(`${field}.token`, f.token);
  return { lockName: f.lockName, token: f.token };
}
