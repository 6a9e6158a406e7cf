import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as tls from "node:tls";
import { credentials, status, type ChannelCredentials, type ServiceError } from "@grpc/grpc-js";
import { Consistency, KeyValueServiceClient } from "../../src/gen/agentstate/v1/kv";
import { ServerProcess } from "../support/ServerProcess";
import { getTestEnv } from "../support/TestEnv";
import { fingerprint, TestCerts, type CertFiles } from "../support/testCerts";

/** One Get over a new channel with `creds`; resolves with the error (undefined: it worked). */
async function getWith(address: string, creds: ChannelCredentials): Promise<ServiceError | undefined> {
  const client = new KeyValueServiceClient(address, creds);
  try {
    return await getOn(client);
  } finally {
    client.close();
  }
}

function getOn(client: KeyValueServiceClient): Promise<ServiceError | undefined> {
  return new Promise((resolve) =>
    client.get(
      { namespace: "tls", key: "k", consistency: Consistency.CONSISTENCY_UNSPECIFIED },
      { deadline: Date.now() + 5000 } as never,
      (err) => resolve(err ?? undefined),
    ),
  );
}

function ssl(ca: CertFiles, client?: CertFiles): ChannelCredentials {
  return credentials.createSsl(
    fs.readFileSync(ca.cert),
    client ? fs.readFileSync(client.key) : null,
    client ? fs.readFileSync(client.cert) : null,
  );
}

/** The fingerprint of the certificate a fresh TLS handshake with the server sees. */
function servedFingerprint(port: number, ca: CertFiles): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: "127.0.0.1", port, ca: fs.readFileSync(ca.cert), ALPNProtocols: ["h2"] }, () => {
      const fp = socket.getPeerCertificate().fingerprint256;
      socket.destroy();
      resolve(fp);
    });
    socket.once("error", reject);
  });
}

describe("security: TLS and mTLS on the gRPC listener", function () {
  let certs: TestCerts;
  let ca: CertFiles;
  let otherCa: CertFiles;
  const servers: ServerProcess[] = [];

  async function start(env: Record<string, string>): Promise<ServerProcess> {
    const testEnv = await getTestEnv();
    const server = await ServerProcess.start({ DATABASE_URL: await testEnv.freshDatabase("tls"), ...env });
    servers.push(server);
    return server;
  }

  before(() => {
    certs = new TestCerts();
    ca = certs.ca("ca");
    otherCa = certs.ca("other-ca");
  });

  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.stop()));
  });

  after(() => certs.remove());

  it("serves TLS: a client trusting the CA works, a plaintext client and a client trusting another CA fail", async () => {
    const leaf = certs.leaf("server", ca);
    const server = await start({ AGENTSTATE_TLS_CERT_FILE: leaf.cert, AGENTSTATE_TLS_KEY_FILE: leaf.key });
    assert.equal(server.logs().find((l) => l.msg === "listening")?.tls, "tls");
    assert.equal(await getWith(server.address, ssl(ca)), undefined);
    const plain = await getWith(server.address, credentials.createInsecure());
    assert.equal(plain?.code, status.UNAVAILABLE, String(plain));
    const wrong = await getWith(server.address, ssl(otherCa));
    assert.equal(wrong?.code, status.UNAVAILABLE, String(wrong));
  });

  it("mTLS: only a client certificate signed by the client CA gets in", async () => {
    const leaf = certs.leaf("server-m", ca);
    const clientCa = certs.ca("client-ca");
    const good = certs.leaf("client-good", clientCa, "agent-1");
    const stranger = certs.leaf("client-stranger", otherCa, "agent-1");
    const server = await start({
      AGENTSTATE_TLS_CERT_FILE: leaf.cert,
      AGENTSTATE_TLS_KEY_FILE: leaf.key,
      AGENTSTATE_TLS_CLIENT_CA_FILE: clientCa.cert,
    });
    assert.equal(server.logs().find((l) => l.msg === "listening")?.tls, "mtls");
    assert.equal(await getWith(server.address, ssl(ca, good)), undefined);
    const none = await getWith(server.address, ssl(ca));
    assert.equal(none?.code, status.UNAVAILABLE, String(none));
    const wrong = await getWith(server.address, ssl(ca, stranger));
    assert.equal(wrong?.code, status.UNAVAILABLE, String(wrong));
  });

  it("rotation: the certificate is replaced under load with zero failed calls, new handshakes see the new one", async function () {
    this.timeout(60_000);
    const first = certs.leaf("rot-1", ca);
    const second = certs.leaf("rot-2", ca);
    const live: CertFiles = { cert: `${certs.dir}/live.pem`, key: `${certs.dir}/live.key` };
    fs.copyFileSync(first.cert, live.cert);
    fs.copyFileSync(first.key, live.key);
    const server = await start({
      AGENTSTATE_TLS_CERT_FILE: live.cert,
      AGENTSTATE_TLS_KEY_FILE: live.key,
      AGENTSTATE_TLS_RELOAD_MS: "100",
    });
    assert.equal(await servedFingerprint(server.port, ca), fingerprint(first.cert));

    // Load: four loops of calls, each opening a new channel (a new handshake)
    // every 10 calls, so handshakes happen all through the rotation.
    let stop = false;
    const failures: string[] = [];
    let calls = 0;
    const loop = async () => {
      while (!stop) {
        const client = new KeyValueServiceClient(server.address, ssl(ca));
        for (let i = 0; i < 10 && !stop; i++) {
          const err = await getOn(client);
          calls++;
          if (err) failures.push(`${err.code} ${err.details}`);
        }
        client.close();
      }
    };
    const loops = [loop(), loop(), loop(), loop()];
    await new Promise((r) => setTimeout(r, 500));
    // A naive rotation: the certificate first, the key 400 ms later; in
    // between the files do not match and the old pair must keep serving.
    fs.copyFileSync(second.cert, live.cert);
    await new Promise((r) => setTimeout(r, 400));
    fs.copyFileSync(second.key, live.key);
    const deadline = Date.now() + 10_000;
    while ((await servedFingerprint(server.port, ca)) !== fingerprint(second.cert)) {
      assert.ok(Date.now() < deadline, "new handshakes never saw the new certificate");
      await new Promise((r) => setTimeout(r, 50));
    }
    await new Promise((r) => setTimeout(r, 500));
    stop = true;
    await Promise.all(loops);
    assert.deepEqual(failures, []);
    assert.ok(calls > 50, `only ${calls} calls ran`);
    assert.ok(server.logs().some((l) => l.msg === "TLS certificate reloaded"));
    assert.ok(server.logs().some((l) => String(l.msg).startsWith("TLS files changed but do not load")));
  });

  it("refuses to start with a key that does not match the certificate, naming the settings", async () => {
    const a = certs.leaf("mismatch-a", ca);
    const b = certs.leaf("mismatch-b", ca);
    await assert.rejects(
      start({ AGENTSTATE_TLS_CERT_FILE: a.cert, AGENTSTATE_TLS_KEY_FILE: b.key }),
      /AGENTSTATE_TLS_CERT_FILE\/AGENTSTATE_TLS_KEY_FILE do not make a valid TLS configuration/,
    );
  });
});
