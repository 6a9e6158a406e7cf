// A child process of bench/run.mjs --fanout-procs: `count` Subscribe streams
// of one stream over one connection of its own, so that decoding what the
// server fans out is spread over processes (and cores) instead of being the
// bench thread's work. Each receipt is stamped with process.hrtime.bigint():
// libuv's uv_hrtime, CLOCK_MONOTONIC on Linux, one clock for every process of
// the machine, so the parent can subtract its own send time (it checks that
// with "ping": a child's stamp must fall between the parent's before and
// after). performance.now() would not do: its origin is each process's start.
//
// Two clients (--fanout-client): "grpc-js", the generated grpc-js client of
// the tests (test/support/eventClient); "http2", Subscribe spoken over Node's
// own HTTP/2 client: the gRPC framing (5-byte prefix) read by hand and every
// message decoded with the same generated decoder (SubscribeResponse.decode),
// without grpc-js's per-message layers (about 26 µs a message here, against
// ~10 µs for the server to send it: BENCHMARKS.md §7, third pass). Both check
// the call's status: a stream that ends early fails the child.
//
//   argv[2]: JSON { clientJs, protoJs, address, req, count, client }
//   -> { ready: true } once every stream has caught up
//   <- { ping } -> { pong, at }; <- { stop: true } -> { recv: [position, at, ...] } and exit
import { Buffer } from "node:buffer";
import * as http2 from "node:http2";
import process from "node:process";

const { clientJs, protoJs, address, req, count, client: kind = "grpc-js" } = JSON.parse(process.argv[2]);
const recv = [];
const subs = kind === "http2" ? await http2Subscribers() : await grpcJsSubscribers();
await Promise.all(subs.map((s) => s.caughtUp));
process.send({ ready: true });
process.on("message", (m) => {
  if (m.ping !== undefined) {
    process.send({ pong: m.ping, at: Number(process.hrtime.bigint()) });
    return;
  }
  if (m.stop) {
    for (const s of subs) s.cancel();
    process.send({ recv }, () => process.exit(0));
  }
});

async function grpcJsSubscribers() {
  const { EventClient } = await import(clientJs);
  const client = new EventClient(address, { ownChannel: true });
  const subs = Array.from({ length: count }, () => {
    const sub = client.subscribe(req);
    sub.call.on("data", (m) => {
      if (m.event) recv.push(Number(m.event.position), Number(process.hrtime.bigint()));
    });
    return sub;
  });
  subs.push({ caughtUp: Promise.resolve(), cancel: () => client.close() });
  return subs;
}

async function http2Subscribers() {
  const { SubscribeRequest, SubscribeResponse } = await import(protoJs);
  const session = http2.connect(`http://${address}`);
  session.on("error", (err) => fail(`http2 session: ${err.message}`));
  const body = SubscribeRequest.encode(SubscribeRequest.fromPartial(req)).finish();
  const framed = Buffer.alloc(5 + body.length);
  framed.writeUInt32BE(body.length, 1);
  Buffer.from(body.buffer, body.byteOffset, body.length).copy(framed, 5);
  let stopping = false;
  const subs = Array.from({ length: count }, () => {
    const stream = session.request({
      ":method": "POST",
      ":path": "/agentstate.v1.EventService/Subscribe",
      "content-type": "application/grpc",
      te: "trailers",
    });
    stream.end(framed);
    let caughtUp;
    const caught = new Promise((resolve) => (caughtUp = resolve));
    let pending = Buffer.alloc(0);
    stream.on("data", (chunk) => {
      const at = Number(process.hrtime.bigint());
      let buf = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      while (buf.length >= 5) {
        const len = buf.readUInt32BE(1);
        if (buf.length < 5 + len) break;
        const m = SubscribeResponse.decode(buf.subarray(5, 5 + len));
        if (m.event) recv.push(Number(m.event.position), at);
        else if (m.caughtUp) caughtUp();
        buf = buf.subarray(5 + len);
      }
      pending = buf;
    });
    const ended = (why) => {
      if (!stopping) fail(`a Subscribe stream ended: ${why}`);
    };
    stream.on("response", (h) => {
      if (h[":status"] !== 200) ended(`HTTP status ${h[":status"]}`);
      else if (h["grpc-status"] !== undefined) ended(`grpc-status ${h["grpc-status"]} ${h["grpc-message"] ?? ""}`);
    });
    stream.on("trailers", (t) => ended(`grpc-status ${t["grpc-status"]} ${t["grpc-message"] ?? ""}`));
    stream.on("error", (err) => ended(err.message));
    stream.on("close", () => ended("closed"));
    return { caughtUp: caught, cancel: () => stream.close(http2.constants.NGHTTP2_CANCEL) };
  });
  subs.push({
    caughtUp: Promise.resolve(),
    cancel: () => {
      stopping = true;
      session.close();
    },
  });
  // Each cancel above runs after `stopping` is set: the session's entry is cancelled first.
  subs.unshift(subs.pop());
  return subs;
}

function fail(msg) {
  process.stderr.write(`fanoutSubscribers: ${msg}\n`);
  process.exit(1);
}
