import * as assert from "node:assert/strict";
import * as path from "node:path";
import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import {
  credentials,
  loadPackageDefinition,
  type Client,
  type ClientDuplexStream,
  type ServiceClientConstructor,
} from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { HealthClient } from "../support/HealthClient";
import { startCluster, type Cluster } from "../support/startCluster";

const AGENTSTATE_SERVICES = [
  "agentstate.v1.EventService",
  "agentstate.v1.KeyValueService",
  "agentstate.v1.LockService",
];

interface ReflectionResponse {
  list_services_response?: { service: { name: string }[] };
  file_descriptor_response?: { file_descriptor_proto: Buffer[] };
  error_response?: { error_code: number; error_message: string };
}

type ReflectionClient = Client & {
  ServerReflectionInfo(): ClientDuplexStream<Record<string, string>, ReflectionResponse>;
};

/** A grpc.reflection client for `version` (v1 or v1alpha), from the protos @grpc/reflection ships. */
function reflectionClient(address: string, version: "v1" | "v1alpha"): ReflectionClient {
  const protoDir = path.join(path.dirname(require.resolve("@grpc/reflection/package.json")), "build", "proto");
  const def = loadSync(`grpc/reflection/${version}/reflection.proto`, {
    includeDirs: [protoDir],
    keepCase: true,
    oneofs: true,
  });
  const pkg = loadPackageDefinition(def) as unknown as {
    grpc: { reflection: Record<string, { ServerReflection: ServiceClientConstructor }> };
  };
  const Ctor = pkg.grpc.reflection[version]!.ServerReflection;
  return new Ctor(address, credentials.createInsecure()) as unknown as ReflectionClient;
}

/** Sends one reflection request on a fresh stream and returns the single response. */
function reflect(client: ReflectionClient, request: Record<string, string>): Promise<ReflectionResponse> {
  return new Promise((resolve, reject) => {
    const call = client.ServerReflectionInfo();
    call.once("data", (res: ReflectionResponse) => {
      resolve(res);
      call.end();
    });
    call.once("error", reject);
    call.write(request);
  });
}

describe("operations: grpc.health.v1 and server reflection", function () {
  this.timeout(60_000);
  let cluster: Cluster;

  before(async () => {
    cluster = await startCluster({ name: "health" });
  });
  after(async () => {
    await cluster?.stop();
  });

  it("Health.Check answers SERVING for the server and for each agentstate service", async () => {
    const health = new HealthClient(cluster.servers[0]!.address);
    try {
      assert.equal(await health.check(""), "SERVING");
      for (const s of AGENTSTATE_SERVICES) assert.equal(await health.check(s), "SERVING", s);
    } finally {
      health.close();
    }
  });

  it("Health.Check for an unknown service is NOT_FOUND", async () => {
    const health = new HealthClient(cluster.servers[0]!.address);
    try {
      await assert.rejects(health.check("no.such.Service"), (e: { code?: number }) => e.code === 5);
    } finally {
      health.close();
    }
  });

  for (const version of ["v1", "v1alpha"] as const) {
    it(`reflection (${version}) lists the agentstate services and health`, async () => {
      const client = reflectionClient(cluster.servers[0]!.address, version);
      try {
        const res = await reflect(client, { list_services: "" });
        const names = (res.list_services_response?.service ?? []).map((s) => s.name);
        for (const s of [...AGENTSTATE_SERVICES, "grpc.health.v1.Health"])
          assert.ok(names.includes(s), `${s} in ${names.join(", ")}`);
      } finally {
        client.close();
      }
    });
  }

  it("reflection serves the file descriptor of a service, well-known imports included", async () => {
    const client = reflectionClient(cluster.servers[0]!.address, "v1");
    try {
      const res = await reflect(client, { file_containing_symbol: "agentstate.v1.KeyValueService" });
      assert.equal(res.error_response, undefined, JSON.stringify(res.error_response));
      const files = (res.file_descriptor_response?.file_descriptor_proto ?? []).map((b) =>
        fromBinary(FileDescriptorProtoSchema, b),
      );
      const kv = files.find((f) => f.name === "agentstate/v1/kv.proto");
      assert.ok(kv, `kv.proto among ${files.map((f) => f.name).join(", ")}`);
      assert.deepEqual(
        kv.service.find((s) => s.name === "KeyValueService")?.method.map((m) => m.name),
        ["Get", "CompareAndSet", "Delete", "List"],
      );
      const byName = await reflect(client, { file_by_filename: "google/protobuf/duration.proto" });
      assert.equal(byName.error_response, undefined, "the well-known types are served as files");
    } finally {
      client.close();
    }
  });
});
