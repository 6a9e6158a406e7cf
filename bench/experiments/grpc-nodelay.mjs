// Experiment: TCP_NODELAY on the gRPC server's accepted sockets. grpc-js sets
// it on its client connections (transport.js) but not on the server's, so a
// reply written while an earlier segment is unacknowledged can wait for the
// peer's ACK (Nagle). Load-time patch, for --ab-import / --server-import:
//   node bench/run.mjs --only health,get-hit --levels 1,64 --ab-import bench/experiments/grpc-nodelay.mjs
import http2 from "node:http2";

const createServer = http2.createServer;
http2.createServer = function (...args) {
  const server = createServer.apply(this, args);
  server.prependListener("connection", (socket) => socket.setNoDelay(true));
  return server;
};
