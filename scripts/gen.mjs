// Generates TypeScript from proto/ for the server (src/gen) and the TypeScript
// client (clients/typescript/src/gen). Lints the protos first. Generated files
// are build output: never edit them, re-run this script.
import { execFileSync } from "node:child_process";
import { rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const buf = join(root, "node_modules", ".bin", "buf");
const run = (args) => execFileSync(buf, args, { cwd: root, stdio: "inherit" });

run(["lint", "proto"]);
for (const out of ["src/gen", "clients/typescript/src/gen"]) rmSync(join(root, out), { recursive: true, force: true });
run(["generate"]);
// Descriptor set (with imports) for server reflection: it carries the
// well-known types as real files, which grpcurl needs to resolve them.
run(["build", "proto", "-o", "src/gen/agentstate.binpb"]);
run(["build", "node_modules/grpc-health-check/proto", "-o", "src/gen/health.binpb"]);
