// First step of `npm run build`: removes dist/, so a source file that was
// moved or deleted leaves no compiled copy behind (tsc only ever adds files;
// a stale test in dist/test would still run and pass against stale code).
import { rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

rmSync(join(fileURLToPath(import.meta.url), "..", "..", "dist"), { recursive: true, force: true });
