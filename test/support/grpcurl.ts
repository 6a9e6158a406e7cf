import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

/** The grpcurl binary: $GRPCURL, ~/go/bin, /usr/local/bin or the PATH. */
export function findGrpcurl(): string {
  const candidates = [process.env["GRPCURL"], join(homedir(), "go", "bin", "grpcurl"), "/usr/local/bin/grpcurl"];
  for (const c of candidates) if (c && existsSync(c)) return c;
  try {
    return execFileSync("bash", ["-c", "command -v grpcurl"]).toString().trim();
  } catch {
    throw new Error(
      "grpcurl not found: install it with `go install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.3`",
    );
  }
}
