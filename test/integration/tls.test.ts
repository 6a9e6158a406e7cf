import * as assert from "node:assert/strict";
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import * as tls from "node:tls";
import { Client, credentials, status, type ChannelCredentials, type ServiceError } from "@grpc/grpc-js";
import { AgentstateClient } from "../../clients/typescript/src/AgentstateClient";
import { Consistency, KeyValueServiceClient } from "../../src/gen/agentstate/v1/kv";
import { ServerProcess } from "../support/ServerProcess";
import { getTestEnv } from "../support/TestEnv";
import { fingerprint, TestCerts, type CertFiles } from "../support/testCerts";
import { testTlsOptions } from "../support/testTlsOptions";

/** One Get over a new channel with `creds`; resolves with the error (undefined: it worked). */
async function getWith(address: string, creds: ChannelCredentials): Promise<ServiceError | undefined> {
  const client = new KeyValueServiceClient(address, creds, testTlsOptions(creds));
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

/** dist/src/healthcheck.js (`agentstate health`) with `env`; resolves with its exit code and stderr. */
function healthcheck(env: Record<string, string>): Promise<{ code: number; stderr: string }> {
  const script = path.resolve(__dirname, "../../src/healthcheck.js");
  return new Promise((resolve) =>
    execFile(
      process.execPath,
      [script],
      { env: { PATH: process.env.PATH ?? "", ...env }, timeout: 30_000 },
      (err, _o, stderr) => resolve({ code: err ? (typeof err.code === "number" ? err.code : -1) : 0, stderr }),
    ),
  );
}

/** One ServerReflectionInfo exchange (list services); resolves with the error, undefined if it answered. */
function reflect(address: string): Promise<ServiceError | undefined> {
  const client = new Client(address, credentials.createInsecure());
  // ServerReflectionRequest{list_services: ""}: field 7, length 0.
  const call = client.makeBidiStreamRequest(
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    (b: Buffer) => b,
    (b: Buffer) => b,
  );
  return new Promise<ServiceError | undefined>((resolve) => {
    call.on("data", () => {
      call.cancel();
      resolve(undefined);
    });
    call.on("error", (err: ServiceError) => resolve(err));
    call.write(Buffer.from([0x3a, 0x00]));
    call.end();
  }).finally(() => client.close());
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
        const creds = ssl(ca);
        const client = new KeyValueServiceClient(server.address, creds, testTlsOptions(creds));
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
      (e: Error) =>
        /exited \(code=2/.test(e.message) &&
        /AGENTSTATE_TLS_CERT_FILE\/AGENTSTATE_TLS_KEY_FILE do not make a valid TLS configuration/.test(e.message),
    );
  });

  it("the TypeScript client's tls option: TLS with the CA, mTLS with a client certificate", async () => {
    const leaf = certs.leaf("server-ts", ca);
    const clientCa = certs.ca("client-ca-ts");
    const mine = certs.leaf("client-ts", clientCa);
    const tlsOnly = await start({ AGENTSTATE_TLS_CERT_FILE: leaf.cert, AGENTSTATE_TLS_KEY_FILE: leaf.key });
    const mtls = await start({
      AGENTSTATE_TLS_CERT_FILE: leaf.cert,
      AGENTSTATE_TLS_KEY_FILE: leaf.key,
      AGENTSTATE_TLS_CLIENT_CA_FILE: clientCa.cert,
    });
    const use = async (address: string, tls: ConstructorParameters<typeof AgentstateClient>[1]) => {
      const client = new AgentstateClient(address, { ...tls, deadlineMs: 5000 });
      try {
        await client.put("ts-tls", "k", "v");
        return undefined;
      } catch (err) {
        return err as ServiceError;
      } finally {
        client.close();
      }
    };
    assert.equal(await use(tlsOnly.address, { tls: { caFile: ca.cert } }), undefined);
    assert.equal((await use(tlsOnly.address, {}))?.code, status.UNAVAILABLE);
    const withCert = { tls: { caFile: ca.cert, certFile: mine.cert, keyFile: mine.key } };
    assert.equal(await use(mtls.address, withCert), undefined);
    assert.equal((await use(mtls.address, { tls: { caFile: ca.cert } }))?.code, status.UNAVAILABLE);
  });

  it("agentstate health speaks TLS (and mTLS, presenting the server's certificate)", async () => {
    const leaf = certs.leaf("server-h", ca);
    const tlsEnv = { AGENTSTATE_TLS_CERT_FILE: leaf.cert, AGENTSTATE_TLS_KEY_FILE: leaf.key };
    const server = await start({ ...tlsEnv, AGENTSTATE_TLS_CLIENT_CA_FILE: ca.cert });
    const port = String(server.port);
    const good = await healthcheck({
      ...tlsEnv,
      AGENTSTATE_TLS_CLIENT_CA_FILE: ca.cert,
      AGENTSTATE_TLS_CA_FILE: ca.cert,
      AGENTSTATE_PORT: port,
    });
    assert.equal(good.code, 0, good.stderr);
    const plain = await healthcheck({ AGENTSTATE_PORT: port });
    assert.equal(plain.code, 1, plain.stderr);
  });
});

describe("security: safe defaults", function () {
  const servers: ServerProcess[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.stop()));
  });

  it("refuses to serve plaintext beyond loopback, naming the settings", async () => {
    const testEnv = await getTestEnv();
    await assert.rejects(
      ServerProcess.start({ DATABASE_URL: await testEnv.freshDatabase("insecure"), AGENTSTATE_HOST: "0.0.0.0" }),
      (e: Error) =>
        /exited \(code=2/.test(e.message) &&
        /AGENTSTATE_HOST=0\.0\.0\.0 is not a loopback address/.test(e.message) &&
        /AGENTSTATE_TLS_CERT_FILE and AGENTSTATE_TLS_KEY_FILE/.test(e.message) &&
        /AGENTSTATE_INSECURE=1/.test(e.message),
    );
  });

  it("serves plaintext beyond loopback when AGENTSTATE_INSECURE=1 says so, with a warning", async () => {
    const testEnv = await getTestEnv();
    const server = await ServerProcess.start({
      DATABASE_URL: await testEnv.freshDatabase("insecure"),
      AGENTSTATE_HOST: "0.0.0.0",
      AGENTSTATE_INSECURE: "1",
      AGENTSTATE_METRICS_PORT: "-1",
    });
    servers.push(server);
    const warning = server.logs().find((l) => l.level === "warn" && /AGENTSTATE_INSECURE=1/.test(String(l.msg)));
    assert.ok(warning, server.tail(20));
  });

  it("AGENTSTATE_REFLECTION=off turns reflection off; metrics stay on loopback", async () => {
    const testEnv = await getTestEnv();
    const url = await testEnv.freshDatabase("reflection");
    const on = await ServerProcess.start({ DATABASE_URL: url });
    servers.push(on);
    assert.equal(await reflect(on.address), undefined);
    const metricsAddress = on.logs().find((l) => l.msg === "listening")?.metrics;
    assert.match(String(metricsAddress), /^127\.0\.0\.1:\d+$/);
    const off = await ServerProcess.start({ DATABASE_URL: url, AGENTSTATE_REFLECTION: "off" });
    servers.push(off);
    assert.equal((await reflect(off.address))?.code, status.UNIMPLEMENTED);
  });
});
