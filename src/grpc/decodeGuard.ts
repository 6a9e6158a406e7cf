/**
 * Request decoding that cannot turn bad input into INTERNAL. The generated
 * decoders map int64 to JS numbers and throw on values beyond ±(2^53-1), which
 * grpc-js would answer as "INTERNAL: Error deserializing request". Here a
 * failed decode becomes a marker object; the call wrapper answers it with
 * INVALID_ARGUMENT naming the field, found by decoding again with bigints from
 * the descriptor set.
 */
import { createFileRegistry, fromBinary, type DescMessage, type Message } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { readFileSync } from "node:fs";
import type { ServiceDefinition } from "@grpc/grpc-js";
import { InvalidArgumentError } from "../errors/errors";

export class UndecodableRequest {
  constructor(readonly error: InvalidArgumentError) {}
}

const LIMIT = BigInt(Number.MAX_SAFE_INTEGER);

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

export function guardDeserializers(def: ServiceDefinition, descriptorSetPath: string, pkg: string): ServiceDefinition {
  const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, readFileSync(descriptorSetPath)));
  const guarded: Record<string, unknown> = {};
  for (const [name, method] of Object.entries(def)) {
    // buf lint (RPC_REQUEST_STANDARD_NAME) guarantees <Method>Request naming.
    const typeName = `${pkg}.${method.path.split("/").pop()}Request`;
    const desc = registry.getMessage(typeName);
    guarded[name] = {
      ...method,
      requestDeserialize: (bytes: Buffer) => {
        try {
          return method.requestDeserialize(bytes);
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
