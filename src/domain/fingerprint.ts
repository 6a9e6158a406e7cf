/**
 * Request fingerprints for idempotency keys: a retry must be the same request
 * (same operation, key, condition, value, TTL and fence) to replay the first
 * outcome; anything else reusing the key is refused (guarantee 5).
 */
import { createHash } from "node:crypto";
import type { WriteCommand } from "./types";

export function requestFingerprint(cmd: WriteCommand): Buffer {
  const h = createHash("sha256");
  const parts: (string | number | undefined)[] = [
    cmd.op,
    cmd.namespace,
    cmd.key,
    cmd.expected.kind,
    cmd.expected.kind === "version" ? cmd.expected.version : "",
    cmd.fence?.lockName ?? "",
    cmd.fence?.token ?? "",
  ];
  if (cmd.op === "put") parts.push(cmd.contentType, cmd.ttlMs ?? "");
  for (const p of parts) {
    const s = String(p ?? "");
    h.update(`${Buffer.byteLength(s)}:${s};`);
  }
  if (cmd.op === "put") h.update(cmd.value);
  return h.digest();
}
