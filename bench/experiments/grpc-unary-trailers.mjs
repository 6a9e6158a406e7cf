// Experiment: how much of a unary RPC's floor is grpc-js sending the trailers
// only from the message write's completion callback (one event-loop
// iteration after the HEADERS and DATA, in a second writev). For unary
// handlers only, this load-time patch lets the status follow the message at
// once, so nghttp2 can send DATA and the trailers together. Not for
// production: a write error after the status is no longer reported.
//   node bench/run.mjs --only health,get-hit --levels 1,64 --ab-import bench/experiments/grpc-unary-trailers.mjs
// (health is a baseline on server A only; compare get-hit with get-hit+B.)
import { createRequire } from "node:module";
import path from "node:path";

// The repo's grpc-js: the server built in the run directory resolves the same
// files (NODE_PATH), and modules are cached by their real path.
const require = createRequire(import.meta.url);
const grpcMain = require.resolve("@grpc/grpc-js");
const { BaseServerInterceptingCall } = require(path.join(path.dirname(grpcMain), "server-interceptors.js"));

const sendMessage = BaseServerInterceptingCall.prototype.sendMessage;
BaseServerInterceptingCall.prototype.sendMessage = function (message, callback) {
  if (this.handler?.type !== "unary") return sendMessage.call(this, message, callback);
  let called = false;
  const once = () => {
    if (called) return;
    called = true;
    callback();
  };
  sendMessage.call(this, message, once);
  if (!this.cancelled && !this.wantTrailers) once();
};
