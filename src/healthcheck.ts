/**
 * Container health check: calls grpc.health.v1.Health/Check on the local
 * server and exits 0 only when it answers SERVING.
 */
import { credentials, loadPackageDefinition, type ServiceError } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { protoPath } from "grpc-health-check";
import { loadConfig } from "./config/config";

const { port } = loadConfig();
const pkg = loadPackageDefinition(loadSync(protoPath)) as unknown as {
  grpc: {
    health: {
      v1: {
        Health: new (
          addr: string,
          creds: ReturnType<typeof credentials.createInsecure>,
        ) => {
          check(req: object, opts: object, cb: (err: ServiceError | null, res: { status: string }) => void): void;
        };
      };
    };
  };
};
const client = new pkg.grpc.health.v1.Health(`127.0.0.1:${port}`, credentials.createInsecure());
client.check({ service: "" }, { deadline: Date.now() + 2000 }, (err, res) => {
  process.exit(!err && res.status === "SERVING" ? 0 : 1);
});
