// Last step of `npm run build`: marks the build finished, so `npm start`
// (scripts/start.mjs) can skip building when no source is newer.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

writeFileSync(
  join(fileURLToPath(import.meta.url), "..", "..", "dist", ".build-stamp"),
  `${new Date().toISOString()}\n`,
);
