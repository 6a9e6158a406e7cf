/**
 * Services registered outside the call pipeline (server reflection, added by
 * @grpc/reflection) still follow auth when it is on: `gatedServer` hands such
 * a service a server whose every handler first asks the auth step for a
 * principal with some grant, and ends the call with UNAUTHENTICATED or
 * PERMISSION_DENIED otherwise. Health stays open (probes carry no credentials).
 */
import type { Server, ServiceDefinition, UntypedServiceImplementation } from "@grpc/grpc-js";
import type { Logger } from "../../log/Logger";
import { toGrpcError } from "../toGrpcError";
import type { AuthStep } from "./AuthStep";
import type { AuthCall } from "../pipeline/context";

type AnyHandler = (call: AuthCall & { emit(event: "error", e: unknown): boolean }, ...rest: unknown[]) => void;

export function gatedServer(server: Server, step: AuthStep, log: Logger): Pick<Server, "addService"> {
  return {
    addService(service: ServiceDefinition, impl: UntypedServiceImplementation): void {
      const gated = Object.fromEntries(
        Object.entries(impl).map(([name, handler]) => [
          name,
          (call: Parameters<AnyHandler>[0], ...rest: unknown[]) => {
            step.someGrant(call).then(
              () => (handler as AnyHandler)(call, ...rest),
              (err: unknown) => {
                log.warn("call denied", { rpc: name, reason: (err as Error).message });
                call.emit("error", toGrpcError(err, log));
              },
            );
          },
        ]),
      );
      server.addService(service, gated as UntypedServiceImplementation);
    },
  };
}
