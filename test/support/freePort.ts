import { createServer } from "node:net";

/**
 * Returns a TCP port that was free on 127.0.0.1 a moment ago: binds port 0,
 * reads the port the kernel picked, closes the listener. (Inherently racy;
 * callers that spawn a process on it should retry on "address in use".)
 */
export function freePort(): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const addr = server.address();
      if (addr === null || typeof addr === "string") {
        server.close();
        reject(new Error(`freePort: unexpected address ${String(addr)}`));
        return;
      }
      const { port } = addr;
      server.close((err) => (err ? reject(err) : resolve(port)));
    });
  });
}
