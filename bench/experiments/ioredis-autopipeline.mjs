// EXPERIMENT, loaded into the server with
//   node bench/run.mjs --server-import bench/experiments/ioredis-autopipeline.mjs
// Turns on ioredis's enableAutoPipelining for every client the server makes
// (cache and Redlock masters): commands issued in the same event-loop tick go
// out in one socket write instead of one write syscall each. It measures what
// the same option in src/store/buildKvStore.ts and RedlockLockStore.ts would
// give, without changing src/.
import Redis from "ioredis";
import process from "node:process";

const connect = Redis.prototype.connect;
Redis.prototype.connect = function (...args) {
  this.options.enableAutoPipelining = true;
  return connect.apply(this, args);
};

process.stderr.write("experiment: ioredis enableAutoPipelining on\n");
