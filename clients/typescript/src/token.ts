/**
 * Bearer credentials for a server with AGENTSTATE_AUTH=required: a fixed API
 * token, or a token source asked before every call (for refreshable JWTs: the
 * source caches and refreshes on its own). Sent as `authorization: Bearer ...`
 * through an interceptor, so they work over TLS and over plaintext on
 * loopback alike.
 */
import { InterceptingCall, type Interceptor, type Metadata } from "@grpc/grpc-js";

/** A token, or a function that returns the current one (may be async). */
export type TokenSource = string | (() => string | Promise<string>);

export function tokenInterceptor(source: TokenSource): Interceptor {
  return (options, nextCall) =>
    new InterceptingCall(nextCall(options), {
      start(metadata: Metadata, listener, next) {
        const set = (token: string) => {
          metadata.set("authorization", `Bearer ${token}`);
          next(metadata, listener);
        };
        if (typeof source === "string") return set(source);
        Promise.resolve()
          .then(source)
          .then(set, (err: unknown) => {
            // The call fails as UNAUTHENTICATED with the source's error; nothing is sent.
            listener.onReceiveStatus?.({
              code: 16,
              details: `agentstate: the token source failed: ${(err as Error)?.message ?? String(err)}`,
              metadata,
            });
          });
      },
    });
}
