import type { ServiceError } from "@grpc/grpc-js";

/** Settles with the reply or the error, never rejects. */
export function settle<T>(p: Promise<T>): Promise<{ ok: T } | { err: ServiceError }> {
  return p.then(
    (ok) => ({ ok }),
    (err: ServiceError) => ({ err }),
  );
}
