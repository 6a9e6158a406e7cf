/**
 * TLS for the gRPC listener, with rotation: the certificate, key and (for
 * mTLS) client CA files are checked every `reloadMs`, and when their bytes
 * change the new set replaces the old one for new handshakes only
 * (grpc-js hands it to http2's setSecureContext). Connections already open
 * keep the context they were made with, so no call in flight fails.
 *
 * Why not grpc-js's FileWatcherCertificateProvider: it installs whatever it
 * reads, so a rotation caught between the certificate and the key being
 * written (a mismatched pair) or a file briefly missing marks the
 * credentials invalid and grpc-js drops new connections until the next read.
 * Here a set is installed only after it makes a valid secure context; until
 * then the previous set stays, and the failure is logged once per content.
 */
import { readFileSync } from "node:fs";
import { createSecureContext, type SecureContextOptions } from "node:tls";
import { ServerCredentials } from "@grpc/grpc-js";
import { ConfigError, type TlsFiles } from "../../config/config";
import type { Logger } from "../../log/Logger";

/** The bytes of one set of files, read at one moment. */
interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  ca: Buffer | undefined;
}

function read(files: TlsFiles): TlsMaterial {
  return {
    cert: readFileSync(files.certFile),
    key: readFileSync(files.keyFile),
    ca: files.clientCaFile === undefined ? undefined : readFileSync(files.clientCaFile),
  };
}

function same(a: TlsMaterial, b: TlsMaterial): boolean {
  return a.cert.equals(b.cert) && a.key.equals(b.key) && (a.ca === b.ca || (!!a.ca && !!b.ca && a.ca.equals(b.ca)));
}

function contextOptions(m: TlsMaterial): SecureContextOptions {
  const options: SecureContextOptions = { cert: m.cert, key: m.key, ...(m.ca ? { ca: m.ca } : {}) };
  // Throws on a bad PEM or a key that does not match the certificate.
  createSecureContext(options);
  return options;
}

export class ReloadingServerCredentials extends ServerCredentials {
  private current: TlsMaterial;
  /** The last content that failed to load, so a half-written rotation is logged once. */
  private rejected: TlsMaterial | undefined;
  private unreadable = false;
  private timer: NodeJS.Timeout | undefined;

  /** Reads the files now; throws a ConfigError naming the settings if they do not make a valid TLS context. */
  constructor(
    private readonly files: TlsFiles,
    private readonly reloadMs: number,
    private readonly log: Logger,
  ) {
    const material = read(files);
    let options: SecureContextOptions;
    try {
      options = contextOptions(material);
    } catch (err) {
      throw new ConfigError(
        `AGENTSTATE_TLS_CERT_FILE/AGENTSTATE_TLS_KEY_FILE${files.clientCaFile ? "/AGENTSTATE_TLS_CLIENT_CA_FILE" : ""} ` +
          `do not make a valid TLS configuration: ${(err as Error).message}`,
      );
    }
    // requestCert + rejectUnauthorized: with a client CA, a client without a
    // certificate signed by it fails the handshake.
    super({ requestCert: files.clientCaFile !== undefined, rejectUnauthorized: true }, options);
    this.current = material;
  }

  /** Starts checking the files for changes; stop() ends it. */
  watch(): void {
    this.timer ??= setInterval(() => this.reload(), this.reloadMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Installs the files' content if it changed and is valid; keeps the old set otherwise. Returns true if installed. */
  reload(): boolean {
    let material: TlsMaterial;
    try {
      material = read(this.files);
    } catch (err) {
      // Mid-rotation (a file renamed away for a moment): keep serving the old set.
      if (!this.unreadable) {
        this.log.warn("TLS files not readable, keeping the current certificate", { error: (err as Error).message });
      }
      this.unreadable = true;
      return false;
    }
    this.unreadable = false;
    if (same(material, this.current)) return false;
    let options: SecureContextOptions;
    try {
      options = contextOptions(material);
    } catch (err) {
      if (!this.rejected || !same(material, this.rejected)) {
        this.log.warn("TLS files changed but do not load, keeping the current certificate", {
          error: (err as Error).message,
        });
      }
      this.rejected = material;
      return false;
    }
    this.current = material;
    this.rejected = undefined;
    this.updateSecureContextOptions(options);
    this.log.info("TLS certificate reloaded", { certFile: this.files.certFile });
    return true;
  }

  override _equals(other: ServerCredentials): boolean {
    return other === this;
  }
}
