/**
 * The TypeScript client over TLS to an IP address. grpc-js sends the target's
 * host as Node's TLS `servername`, and Node 26 refuses an IP there (RFC 6066;
 * DEP0123 was a warning before): every such connection failed with
 * ERR_INVALID_ARG_VALUE. The client sends a reserved name instead and checks
 * the server's certificate against the IP itself. CI runs the unit suite on
 * Node 22, 24 and 26; on 26, the first case fails without the change.
 */
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import { Server, ServerCredentials, type ServiceError } from "@grpc/grpc-js";
import { AgentstateClient } from "../../clients/typescript/src/AgentstateClient";
import { GetResponse, KeyValueServiceService } from "../../src/gen/agentstate/v1/kv";
import { TestCerts, type CertFiles } from "../support/testCerts";

async function serve(cert: CertFiles): Promise<{ server: Server; port: number }> {
  const server = new Server();
  server.addService(KeyValueServiceService, {
    get: (_call: unknown, cb: (err: null, res: GetResponse) => void) =>
      cb(null, GetResponse.fromPartial({ found: false })),
  } as never);
  const creds = ServerCredentials.createSsl(
    null,
    [{ private_key: fs.readFileSync(cert.key), cert_chain: fs.readFileSync(cert.cert) }],
    false,
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", creds, (err, p) => (err ? reject(err) : resolve(p))),
  );
  return { server, port };
}

describe("AgentstateClient over TLS to an IP address", function () {
  this.timeout(20_000);
  let certs: TestCerts;
  let ca: CertFiles;
  const servers: Server[] = [];

  before(() => {
    certs = new TestCerts();
    ca = certs.ca("ca");
  });

  after(() => {
    for (const s of servers) s.forceShutdown();
    certs.remove();
  });

  it("connects, the certificate naming the IP (works on Node 26, which refuses an IP as the TLS server name)", async () => {
    const { server, port } = await serve(certs.leaf("ip", ca, "server"));
    servers.push(server);
    const client = new AgentstateClient(`127.0.0.1:${port}`, { tls: { caFile: ca.cert }, deadlineMs: 5000 });
    try {
      const res = await client.get({ namespace: "n", key: "k" });
      assert.equal(res.found, false);
    } finally {
      client.close();
    }
  });

  it("still checks the certificate against the IP: one naming only a DNS name is refused", async () => {
    const { server, port } = await serve(certs.leaf("dns", ca, "server", undefined, "DNS:other.example"));
    servers.push(server);
    const client = new AgentstateClient(`127.0.0.1:${port}`, { tls: { caFile: ca.cert }, deadlineMs: 5000 });
    try {
      await assert.rejects(client.get({ namespace: "n", key: "k" }), (err: ServiceError) => {
        assert.match(err.details, /127\.0\.0\.1/);
        assert.match(err.details, /ERR_TLS_CERT_ALTNAME_INVALID/);
        return true;
      });
    } finally {
      client.close();
    }
  });
});
