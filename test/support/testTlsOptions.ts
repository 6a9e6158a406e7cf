import type { ChannelCredentials, ChannelOptions } from "@grpc/grpc-js";

/**
 * Channel options for a raw grpc-js client of a test server over TLS, reached
 * by IP: grpc-js sends the target's host as the TLS server name, which Node 26
 * refuses for an IP. The test certificates (testCerts.ts) name localhost too,
 * so the server name and the certificate check use that.
 */
export function testTlsOptions(creds: ChannelCredentials): ChannelOptions {
  return creds._isSecure() ? { "grpc.ssl_target_name_override": "localhost" } : {};
}
