// EXPERIMENT, loaded into the server with
//   node bench/run.mjs --ab-import bench/experiments/redis-cork.mjs
// Corks every ioredis connection for the rest of the event-loop turn when a
// command is sent (the cache's Get path already does this for its reads):
// commands issued in one turn (the end-writes of one KV write batch, the
// Redlock scripts of concurrent Locks) go out in one socket write. Measures
// what doing it in src/store/redis/createRedisClient.ts would give.
import Redis from "ioredis";
import process from "node:process";
import { setImmediate } from "node:timers";

const send = Redis.prototype.sendCommand;
Redis.prototype.sendCommand = function (command, stream) {
  const s = this.stream;
  if (!this.__benchCorked && this.status === "ready" && s?.writable) {
    this.__benchCorked = true;
    s.cork();
    setImmediate(() => {
      this.__benchCorked = false;
      s.uncork();
    });
  }
  return send.call(this, command, stream);
};

process.stderr.write("experiment: ioredis connections corked per event-loop turn\n");
