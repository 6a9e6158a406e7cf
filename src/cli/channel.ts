/**
 * How the command line reaches its own server: the address it listens on (a
 * wildcard reached through loopback) and, when it serves TLS, credentials
 * trusting AGENTSTATE_TLS_CA_FILE (default: the certificate file itself,
 * right for a self-signed certificate). They check the chain, not the host
 * name: the CLI talks to its own server, whatever name the certificate
 * carries. Under mTLS they present AGENTSTATE_TLS_CLIENT_CERT_FILE/KEY_FILE
 * when given, else the server's own certificate and key.
 */
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { credentials, type ChannelCredentials, type ChannelOptions } from "@grpc/grpc-js";
import type { Config } from "../config/config";

/** The host the command line dials: the listener's, a wildcard through loopback. */
function serverHost(config: Config): string {
  return config.host === "0.0.0.0" || config.host === "::" ? "127.0.0.1" : config.host;
}

export function serverAddress(config: Config): string {
  const target = serverHost(config);
  return target.includes(":") ? `[${target}]:${config.port}` : `${target}:${config.port}`;
}

/**
 * Channel options for the command line's client: over TLS to an IP address,
 * a server name that is not one (grpc-js sends the target's host as Node's
 * `servername`, and Node 26 refuses an IP there: RFC 6066). The name is a
 * reserved TLD (RFC 2606); the credentials below check no host name, so it
 * is only what the handshake carries.
 */
export function channelOptions(config: Config): ChannelOptions {
  if (config.tls === undefined && config.tlsCaFile === undefined) return {};
  return isIP(serverHost(config)) === 0 ? {} : { "grpc.ssl_target_name_override": "ip-address.invalid" };
}

export function channelCredentials(
  config: Config,
  client?: { certFile: string | undefined; keyFile: string | undefined },
): ChannelCredentials {
  if (config.tls === undefined && config.tlsCaFile === undefined) return credentials.createInsecure();
  const ca = config.tlsCaFile === undefined ? null : readFileSync(config.tlsCaFile);
  const own = client?.certFile !== undefined && client.keyFile !== undefined;
  const mtls = own || config.tls?.clientCaFile !== undefined;
  const certFile = own ? client!.certFile! : config.tls?.certFile;
  const keyFile = own ? client!.keyFile! : config.tls?.keyFile;
  return credentials.createSsl(
    ca,
    mtls && keyFile ? readFileSync(keyFile) : null,
    mtls && certFile ? readFileSync(certFile) : null,
    { checkServerIdentity: () => undefined },
  );
}
