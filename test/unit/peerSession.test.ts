import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import { TLSSocket } from "node:tls";
import {
  Client,
  credentials,
  Metadata,
  Server,
  ServerCredentials,
  type ServerUnaryCall,
  type sendUnaryData,
} from "@grpc/grpc-js";
import type { Authenticator, Credentials, Principal } from "../../src/domain/principals";
import { AuthStep } from "../../src/grpc/auth/AuthStep";
import { sessionOf } from "../../src/grpc/auth/peerSession";
import type { CallContext } from "../../src/grpc/pipeline/context";
import { TestCerts, type CertFiles } from "../support/testCerts";

const id = (b: Buffer) => b;
const METHOD = {
  path: "/test.Peer/Who",
  requestStream: false,
  responseStream: false,
  requestSerialize: id,
  requestDeserialize: id,
  responseSerialize: id,
  responseDeserialize: id,
};

/** An authenticator whose principal is named after the certificate's CN, with read everywhere. */
const byCn: Authenticator = {
  authenticate(c: Credentials): Principal {
    const peer = c.peer();
    return { name: peer?.cn ?? "(none)", grants: [{ namespace: "*", prefix: "", roles: ["read"] }], via: "cert" };
  },
};

const ctx = { log: { warn: () => undefined } } as unknown as CallContext;

describe("grpc/auth peerSession: a client certificate is read once per connection (real grpc-js mTLS server)", function () {
  this.timeout(30_000);
  let certs: TestCerts;
  let ca: CertFiles;
  let server: Server;
  let port: number;
  const sessions = new Set<object>();
  let reads = 0;
  const original = TLSSocket.prototype.getPeerCertificate;

  before(async () => {
    certs = new TestCerts();
    ca = certs.ca("ca");
    const leaf = certs.leaf("server", ca);
    const step = new AuthStep(byCn);
    server = new Server();
    server.addService(
      { Who: METHOD },
      {
        Who: (call: ServerUnaryCall<Buffer, Buffer>, cb: sendUnaryData<Buffer>) => {
          const session = sessionOf(call);
          if (session) sessions.add(session);
          const p = step.admit("Get", call, { namespace: "demo", key: "k" }, ctx) as Principal;
          cb(null, Buffer.from(p.name));
        },
      },
    );
    const creds = ServerCredentials.createSsl(
      fs.readFileSync(ca.cert),
      [{ private_key: fs.readFileSync(leaf.key), cert_chain: fs.readFileSync(leaf.cert) }],
      true,
    );
    port = await new Promise((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", creds, (err, p) => (err ? reject(err) : resolve(p))),
    );
    TLSSocket.prototype.getPeerCertificate = function (this: TLSSocket, ...args: [boolean?]) {
      if ((this as unknown as { _tlsOptions?: { isServer?: boolean } })._tlsOptions?.isServer) reads++; // not the client's check
      return original.apply(this, args as [true]);
    } as typeof original;
  });

  after(() => {
    TLSSocket.prototype.getPeerCertificate = original;
    server?.forceShutdown();
    certs?.remove();
  });

  function who(client: Client): Promise<string> {
    return new Promise((resolve, reject) =>
      client.makeUnaryRequest(METHOD.path, id, id, Buffer.alloc(0), new Metadata(), (err, res) =>
        err ? reject(err) : resolve(res!.toString()),
      ),
    );
  }

  it("maps each connection to its own certificate's CN and reads each certificate once, not per call", async () => {
    const clients = ["agent-a", "agent-b"].map((cn) => {
      const c = certs.leaf(cn, ca, cn);
      return new Client(
        `localhost:${port}`,
        credentials.createSsl(fs.readFileSync(ca.cert), fs.readFileSync(c.key), fs.readFileSync(c.cert)),
      );
    });
    try {
      for (let i = 0; i < 10; i++) {
        assert.equal(await who(clients[0]!), "agent-a");
        assert.equal(await who(clients[1]!), "agent-b");
      }
      assert.equal(sessions.size, 2, "sessionOf finds one HTTP/2 session per connection");
      assert.ok(reads >= 1 && reads <= 2, `the peer certificate was read ${reads} times for 20 calls on 2 connections`);
      // A new connection (a rotated certificate comes on one) is read afresh.
      const rotated = certs.leaf("agent-a2", ca, "agent-a-rotated");
      const third = new Client(
        `localhost:${port}`,
        credentials.createSsl(fs.readFileSync(ca.cert), fs.readFileSync(rotated.key), fs.readFileSync(rotated.cert)),
      );
      assert.equal(await who(third), "agent-a-rotated");
      assert.equal(await who(third), "agent-a-rotated");
      third.close();
      assert.ok(reads <= 3, `read ${reads} times for 3 connections`);
    } finally {
      for (const c of clients) c.close();
    }
  });
});
