import * as assert from "node:assert/strict";
import { InvalidArgumentError } from "../../src/errors/errors";

/**
 * Asserts `fn` throws an InvalidArgumentError for `field` whose message names
 * it first and, when given, matches `message`.
 */
export function expectInvalidArgument(fn: () => unknown, field: string, message?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof InvalidArgumentError, `InvalidArgumentError, got ${String(e)}`);
    assert.equal(e.field, field);
    assert.ok(e.message.startsWith(`${field}: `), `message names the field: ${e.message}`);
    if (message) assert.match(e.message, message);
    return true;
  });
}
