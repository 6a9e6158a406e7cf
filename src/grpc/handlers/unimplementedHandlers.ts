/**
 * Placeholder handlers for services whose issue has not landed yet: every RPC
 * answers UNIMPLEMENTED with a message saying so. The service is registered so
 * that reflection and generated clients see the whole API from day one.
 */
import { status, type ServiceDefinition, type UntypedServiceImplementation } from "@grpc/grpc-js";

export function unimplementedHandlers(def: ServiceDefinition, what: string): UntypedServiceImplementation {
  const impl: UntypedServiceImplementation = {};
  for (const name of Object.keys(def)) {
    impl[name] = (call: unknown, callback?: (e: unknown) => void) => {
      const err = { code: status.UNIMPLEMENTED, details: `${what} are not implemented yet` };
      if (typeof callback === "function") callback(err);
      else (call as { emit(e: string, v: unknown): void }).emit("error", err);
    };
  }
  return impl;
}
