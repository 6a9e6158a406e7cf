import { execFileSync } from "node:child_process";
import { randomBytes, X509Certificate } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

/** PEM files of one key pair. */
export interface CertFiles {
  cert: string;
  key: string;
}

function openssl(args: string[]): void {
  execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"] });
}

/**
 * A temp directory of test certificates made with openssl (P-256 keys, valid
 * one day): CAs and leaves signed by them. remove() deletes it.
 */
export class TestCerts {
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), "agentstate-certs-"));

  /** A self-signed CA named `name`. */
  ca(name: string): CertFiles {
    const files = this.paths(name);
    openssl(
      ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"].concat([
        "-keyout",
        files.key,
        "-out",
        files.cert,
        "-days",
        "1",
        "-subj",
        `/CN=${name}`,
      ]),
    );
    return files;
  }

  /**
   * A certificate for `cn` signed by `ca`, valid for localhost and 127.0.0.1
   * (serves as a server or a client certificate); `uri` adds a URI SAN;
   * `names` replaces the DNS and IP names.
   */
  leaf(name: string, ca: CertFiles, cn = name, uri?: string, names = "DNS:localhost,IP:127.0.0.1"): CertFiles {
    const files = this.paths(name);
    const csr = path.join(this.dir, `${name}.csr`);
    const ext = path.join(this.dir, `${name}.ext`);
    fs.writeFileSync(ext, `subjectAltName=${names}${uri ? `,URI:${uri}` : ""}\n`);
    openssl(
      ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"].concat([
        "-keyout",
        files.key,
        "-out",
        csr,
        "-subj",
        `/CN=${cn}`,
      ]),
    );
    openssl(
      ["x509", "-req", "-in", csr, "-CA", ca.cert, "-CAkey", ca.key, "-days", "1"].concat([
        "-set_serial",
        `0x${randomBytes(8).toString("hex")}`,
        "-extfile",
        ext,
        "-out",
        files.cert,
      ]),
    );
    return files;
  }

  remove(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  private paths(name: string): CertFiles {
    return { cert: path.join(this.dir, `${name}.pem`), key: path.join(this.dir, `${name}.key`) };
  }
}

/** SHA-256 fingerprint of the certificate in a PEM file, as node:tls reports it. */
export function fingerprint(certFile: string): string {
  return new X509Certificate(fs.readFileSync(certFile)).fingerprint256;
}
