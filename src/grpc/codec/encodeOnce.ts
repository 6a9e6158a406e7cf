/**
 * encodeOnce: a service definition whose `method` encodes each response
 * object once, however many streams it is written to. Subscribe fans one
 * event out to every matching subscriber as one response object
 * (events/handlers.ts), so a thousand subscribers cost one protobuf encoding,
 * not a thousand. grpc-js copies the encoded bytes into each stream's frame,
 * so sharing them is safe.
 */
import type { ServiceDefinition } from "@grpc/grpc-js";

export function encodeOnce(def: ServiceDefinition, method: string): ServiceDefinition {
  const m = def[method];
  if (m === undefined) throw new Error(`encodeOnce: no method ${method}`);
  const encoded = new WeakMap<object, Buffer>();
  return {
    ...def,
    [method]: {
      ...m,
      responseSerialize: (value: object) => {
        let bytes = encoded.get(value);
        if (bytes === undefined) {
          bytes = m.responseSerialize(value);
          encoded.set(value, bytes);
        }
        return bytes;
      },
    },
  };
}
