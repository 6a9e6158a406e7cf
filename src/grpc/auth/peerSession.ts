/**
 * The HTTP/2 session (one per connection) a grpc-js server call arrived on,
 * so that what the connection's TLS handshake proved (the client
 * certificate) is read and parsed once per connection, not on every call
 * (getAuthContext() builds a new certificate object from the TLS socket each
 * time it is asked).
 *
 * grpc-js 1.14 does not expose the session: a handler's call holds the chain
 * of intercepting calls (`call`, then `nextCall` through server
 * interceptors) whose innermost link holds the http2 stream, and the stream
 * its session. The walk is defensive: if grpc-js changes that shape it finds
 * nothing, and the auth step reads the certificate on every call as before
 * (test/unit/peerSession.test.ts, against a real grpc-js TLS server, fails
 * then, so an upgrade cannot lose the cache silently).
 */
const MAX_LINKS = 8;

export function sessionOf(call: object): object | undefined {
  let link = (call as { call?: unknown }).call;
  for (let i = 0; i < MAX_LINKS && typeof link === "object" && link !== null; i++) {
    const stream = (link as { stream?: { session?: unknown } }).stream;
    if (typeof stream === "object" && stream !== null) {
      const session = stream.session;
      return typeof session === "object" && session !== null ? session : undefined;
    }
    link = (link as { nextCall?: unknown }).nextCall;
  }
  return undefined;
}
