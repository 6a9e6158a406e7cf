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
import { credentials, type ChannelCredentials } from "@grpc/grpc-js";
import type { Config } from "../config/config";

export function serverAddress(config: Config): string {
  const { host, port } = config;
  const target = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host;
  return target.includes(":") ? `[${target}]:${port}` : `${target}:${port}`;
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
