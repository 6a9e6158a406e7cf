import * as assert from "node:assert/strict";
import { status, type ServiceError } from "@grpc/grpc-js";

/**
 * Awaits `call`, asserts it failed with gRPC status `code`, and returns the
 * error. With `field`: the details name it and the `agentstate-field` trailer
 * equals it. With `reason`: the `agentstate-reason` trailer equals it.
 */
export async function expectGrpcError(
  call: Promise<unknown>,
  code: status,
  opts: { field?: string; reason?: string } = {},
): Promise<ServiceError> {
  let err: ServiceError;
  try {
    const res = await call;
    assert.fail(`expected ${status[code]}, the call succeeded with ${JSON.stringify(res)}`);
  } catch (e) {
    if (e instanceof assert.AssertionError) throw e;
    err = e as ServiceError;
  }
  assert.equal(
    err.code,
    code,
    `expected ${status[code]}, got ${status[err.code] ?? err.code}: ${err.details ?? (err as Error).message}`,
  );
  if (opts.field !== undefined) {
    assert.ok(err.details.includes(opts.field), `details ${JSON.stringify(err.details)} should name ${opts.field}`);
    assert.deepEqual(err.metadata.get("agentstate-field"), [opts.field], "agentstate-field trailer");
  }
  if (opts.reason !== undefined) {
    assert.deepEqual(err.metadata.get("agentstate-reason"), [opts.reason], "agentstate-reason trailer");
  }
  return err;
}
