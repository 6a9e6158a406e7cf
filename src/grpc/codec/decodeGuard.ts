/**
 * Request decoding that cannot turn bad input into INTERNAL. The generated
 * decoders map int64 to JS numbers and throw on values beyond ±(2^53-1), which
 * grpc-js would answer as "INTERNAL: Error deserializing request". Here a
 * failed decode becomes a marker object; the call wrapper answers it with
 * INVALID_ARGUMENT naming the field, found by decoding again with bigints from
 * the descriptor set.
 *
 * Strings get the same care: proto3 strings must be UTF-8, but the generated
 * decoders replace invalid bytes with U+FFFD and carry on. A decoded request
 * holding U+FFFD anywhere is decoded again strictly (from the descriptor set);
 * if that fails the request answers INVALID_ARGUMENT naming the field.
 */
import { createFileRegistry, fromBinary, type DescMessage, type Message } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { readFileSync } from "node:fs";
import type { ServiceDefinition } from "@grpc/grpc-js";
import { InvalidArgumentError } from "../../errors/errors";

export class UndecodableRequest {
  constructor(readonly error: InvalidArgumentError) {}
}

const LIMIT = BigInt(Number.MAX_SAFE_INTEGER);

const snake = (s: string) => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/**
 * Whether any string in a decoded request (map keys included) holds U+FFFD.
 * Nearly every request holds none, so this walk builds no paths and
 * allocates nothing; findReplacementChar names the field when it does.
 */
function hasReplacementChar(v: unknown): boolean {
  if (typeof v === "string") return v.includes("\uFFFD");
  if (v === null || typeof v !== "object" || v instanceof Uint8Array || v instanceof Date) return false;
  if (Array.isArray(v)) {
    for (const el of v) if (hasReplacementChar(el)) return true;
    return false;
  }
  const o = v as Record<string, unknown>;
  for (const k in o) {
    if (!Object.hasOwn(o, k)) continue;
    if (k.includes("\uFFFD") || hasReplacementChar(o[k])) return true;
  }
  return false;
}

/** Path (proto field names) of the first string holding U+FFFD, keys of maps included. */
function findReplacementChar(v: unknown, path: string): string | undefined {
  if (typeof v === "string") return v.includes("\uFFFD") ? path : undefined;
  if (v === null || typeof v !== "object" || Buffer.isBuffer(v) || v instanceof Uint8Array || v instanceof Date) {
    return undefined;
  }
  if (Array.isArray(v)) {
    for (const [i, el] of v.entries()) {
      const found = findReplacementChar(el, `${path}[${i}]`);
      if (found) return found;
    }
    return undefined;
  }
  for (const [k, el] of Object.entries(v)) {
    const p = path ? `${path}.${snake(k)}` : snake(k);
    if (k.includes("\uFFFD")) return path || "request";
    const found = findReplacementChar(el, p);
    if (found) return found;
  }
  return undefined;
}

/** Path of the first int64 field whose value does not fit a JS number, if any. */
function findOversizedInt64(desc: DescMessage, msg: Message, path: string): string | undefined {
  for (const field of desc.fields) {
    const name = path ? `${path}.${field.name}` : field.name;
    const obj = msg as unknown as Record<string, unknown>;
    let v = obj[field.localName];
    if (field.oneof) {
      // Oneof members live under the oneof's name as { case, value }.
      const o = obj[field.oneof.localName] as { case?: string; value?: unknown } | undefined;
      v = o?.case === field.localName ? o.value : undefined;
    }
    if (field.fieldKind === "scalar" && typeof v === "bigint" && (v > LIMIT || v < -LIMIT)) return name;
    if (field.fieldKind === "message" && v && typeof v === "object") {
      const found = findOversizedInt64(field.message, v as Message, name);
      if (found) return found;
    }
    if (field.fieldKind === "list" && Array.isArray(v)) {
      for (const [i, el] of v.entries()) {
        if (typeof el === "bigint" && (el > LIMIT || el < -LIMIT)) return `${name}[${i}]`;
        if (field.listKind === "message" && el && typeof el === "object") {
          const found = findOversizedInt64(field.message, el as Message, `${name}[${i}]`);
          if (found) return found;
        }
      }
    }
  }
  return undefined;
}

/** A check of a request's raw bytes, run before it is decoded (by request type name). */
export type PreDecodeCheck = (bytes: Buffer) => InvalidArgumentError | undefined;

export function guardDeserializers(
  def: ServiceDefinition,
  descriptorSetPath: string,
  pkg: string,
  preDecode: Readonly<Record<string, PreDecodeCheck>> = {},
): ServiceDefinition {
  const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, readFileSync(descriptorSetPath)));
  const guarded: Record<string, unknown> = {};
  for (const [name, method] of Object.entries(def)) {
    // buf lint (RPC_REQUEST_STANDARD_NAME) guarantees <Method>Request naming.
    const typeName = `${pkg}.${method.path.split("/").pop()}Request`;
    const desc = registry.getMessage(typeName);
    const pre = preDecode[typeName];
    guarded[name] = {
      ...method,
      requestDeserialize: (bytes: Buffer) => {
        const refused = pre?.(bytes);
        if (refused) return new UndecodableRequest(refused);
        try {
          const decoded: unknown = method.requestDeserialize(bytes);
          const suspect = desc && hasReplacementChar(decoded) ? findReplacementChar(decoded, "") : undefined;
          if (suspect && desc) {
            try {
              fromBinary(desc, bytes); // strict: throws on invalid UTF-8; U+FFFD itself is valid text
            } catch {
              return new UndecodableRequest(new InvalidArgumentError(suspect, "must be valid UTF-8"));
            }
          }
          return decoded;
        } catch (err) {
          let field: string | undefined;
          if (desc) {
            try {
              field = findOversizedInt64(desc, fromBinary(desc, bytes), "");
            } catch {
              // not even valid protobuf
            }
          }
          return new UndecodableRequest(
            field
              ? new InvalidArgumentError(field, `must be between -${LIMIT} and ${LIMIT}`)
              : new InvalidArgumentError("request", `is not a valid ${typeName} message (${(err as Error).message})`),
          );
        }
      },
    };
  }
  return guarded as ServiceDefinition;
}
