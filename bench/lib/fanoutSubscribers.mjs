// A child process of bench/run.mjs --fanout-procs: `count` Subscribe streams
// of one stream over one connection of its own, so that decoding what the
// server fans out is spread over processes (and cores) instead of being the
// bench thread's work. Each receipt is stamped with process.hrtime.bigint():
// libuv's uv_hrtime, CLOCK_MONOTONIC on Linux, one clock for every process of
// the machine, so the parent can subtract its own send time (it checks that
// with "ping": a child's stamp must fall between the parent's before and
// after). performance.now() would not do: its origin is each process's start.
//
//   argv[2]: JSON { clientJs, address, req, count }
//   -> { ready: true } once every stream has caught up
//   <- { ping } -> { pong, at }; <- { stop: true } -> { recv: [position, at, ...] } and exit
import process from "node:process";

const { clientJs, address, req, count } = JSON.parse(process.argv[2]);
const { EventClient } = await import(clientJs);
const client = new EventClient(address, { ownChannel: true });
const recv = [];
const subs = Array.from({ length: count }, () => {
  const sub = client.subscribe(req);
  sub.call.on("data", (m) => {
    if (m.event) recv.push(Number(m.event.position), Number(process.hrtime.bigint()));
  });
  return sub;
});
await Promise.all(subs.map((s) => s.caughtUp));
process.send({ ready: true });
process.on("message", (m) => {
  if (m.ping !== undefined) {
    process.send({ pong: m.ping, at: Number(process.hrtime.bigint()) });
    return;
  }
  if (m.stop) {
    for (const s of subs) s.cancel();
    client.close();
    process.send({ recv }, () => process.exit(0));
  }
});
