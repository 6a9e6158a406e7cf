/**
 * A raw HTTP/2 connection for abuse tests: it writes frames itself, so it can
 * do what no gRPC client does: ignore the server's SETTINGS_MAX_CONCURRENT_STREAMS,
 * send thousands of header fields or megabytes of them, ping in a loop, stay
 * silent. HPACK is the plain subset (literal fields without indexing, no
 * Huffman), which every decoder must accept. It records what the server
 * sends back: SETTINGS, RST_STREAM codes per stream, GOAWAY, and when the
 * socket closed.
 */
import * as net from "node:net";

export const FRAME = {
  data: 0,
  headers: 1,
  rstStream: 3,
  settings: 4,
  ping: 6,
  goaway: 7,
  windowUpdate: 8,
  continuation: 9,
} as const;
export const FLAG = { endStream: 0x1, ack: 0x1, endHeaders: 0x4 } as const;
const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([h, payload]);
}

/** An HPACK integer with an n-bit prefix (RFC 7541 5.1), first byte's high bits given. */
function hpackInt(value: number, prefixBits: number, high = 0): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([high | value]);
  const out = [high | max];
  let v = value - max;
  while (v >= 128) {
    out.push((v % 128) + 128);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return Buffer.from(out);
}

/** A header block of literal fields without indexing (new name), no Huffman coding. */
export function headerBlock(fields: readonly (readonly [string, string | Buffer])[]): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of fields) {
    const n = Buffer.from(name);
    const v = Buffer.isBuffer(value) ? value : Buffer.from(value);
    parts.push(Buffer.from([0]), hpackInt(n.length, 7), n, hpackInt(v.length, 7), v);
  }
  return Buffer.concat(parts);
}

/** The header fields of a gRPC request on `path`. */
export function grpcRequestFields(path: string): [string, string][] {
  return [
    [":method", "POST"],
    [":scheme", "http"],
    [":path", path],
    [":authority", "localhost"],
    ["content-type", "application/grpc"],
    ["te", "trailers"],
  ];
}

/** One gRPC message frame (uncompressed) of `message`. */
export function grpcMessage(message: Buffer): Buffer {
  const h = Buffer.alloc(5);
  h.writeUInt32BE(message.length, 1);
  return Buffer.concat([h, message]);
}

export class RawH2Connection {
  readonly socket: net.Socket;
  /** The server's SETTINGS (id -> value), once received. */
  readonly settings = new Map<number, number>();
  /** RST_STREAM error codes the server sent, by stream id. */
  readonly resets = new Map<number, number>();
  /** Streams on which the server sent HEADERS (a response began). */
  readonly answered = new Set<number>();
  /** Every GOAWAY the server sent, in order. */
  readonly goaways: { code: number; debug: string }[] = [];
  pingsReceived = 0;
  /** DATA frames the server sent, and the PINGs this client sent because of them (`pingOnData`). */
  dataFrames = 0;
  bdpPings = 0;
  private pingOutstanding = false;
  closedAt: number | undefined;
  readonly openedAt = performance.now();
  readonly closed: Promise<void>;
  private buf = Buffer.alloc(0);

  /** Connects; with `handshake` (default) sends the preface and empty SETTINGS, and ACKs the server's. */
  constructor(
    port: number,
    private readonly opts: {
      handshake?: boolean;
      ackPings?: boolean;
      /**
       * Behave as grpc-go's BDP estimator does: on a DATA frame, with no PING of its own unanswered, send a
       * PING (and give the window back, as its flow control does).
       */
      pingOnData?: boolean;
    } = {},
  ) {
    this.socket = net.connect(port, "127.0.0.1");
    this.socket.on("error", () => undefined);
    this.closed = new Promise((resolve) =>
      this.socket.on("close", () => {
        this.closedAt = performance.now();
        resolve();
      }),
    );
    if (opts.handshake !== false) {
      this.socket.write(Buffer.concat([PREFACE, frame(FRAME.settings, 0, 0)]));
    }
    this.socket.on("data", (d: Buffer) => this.onData(d));
  }

  /** Resolves once the socket is connected. */
  connected(): Promise<void> {
    if (!this.socket.connecting) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.socket.once("connect", () => resolve());
      this.socket.once("error", reject);
    });
  }

  private onData(d: Buffer): void {
    this.buf = Buffer.concat([this.buf, d]);
    while (this.buf.length >= 9) {
      const len = this.buf.readUIntBE(0, 3);
      if (this.buf.length < 9 + len) return;
      const type = this.buf[3]!;
      const flags = this.buf[4]!;
      const stream = this.buf.readUInt32BE(5) & 0x7fffffff;
      const p = this.buf.subarray(9, 9 + len);
      this.buf = this.buf.subarray(9 + len);
      if (type === FRAME.settings && !(flags & FLAG.ack)) {
        for (let i = 0; i + 6 <= p.length; i += 6) this.settings.set(p.readUInt16BE(i), p.readUInt32BE(i + 2));
        this.write(frame(FRAME.settings, FLAG.ack, 0));
      } else if (type === FRAME.rstStream) {
        this.resets.set(stream, p.readUInt32BE(0));
      } else if (type === FRAME.headers) {
        this.answered.add(stream);
      } else if (type === FRAME.goaway) {
        this.goaways.push({ code: p.readUInt32BE(4), debug: p.subarray(8).toString() });
      } else if (type === FRAME.data) {
        this.dataFrames++;
        if (this.opts.pingOnData) {
          if (len > 0) {
            const inc = Buffer.alloc(4);
            inc.writeUInt32BE(len);
            this.write(
              Buffer.concat([frame(FRAME.windowUpdate, 0, 0, inc), frame(FRAME.windowUpdate, 0, stream, inc)]),
            );
          }
          if (!this.pingOutstanding) {
            this.pingOutstanding = true;
            this.bdpPings++;
            this.ping();
          }
        }
      } else if (type === FRAME.ping && flags & FLAG.ack) {
        this.pingOutstanding = false;
      } else if (type === FRAME.ping && !(flags & FLAG.ack)) {
        this.pingsReceived++;
        if (this.opts.ackPings !== false) this.write(frame(FRAME.ping, FLAG.ack, 0, Buffer.from(p)));
      }
    }
  }

  /** The first GOAWAY the server sent. */
  get goaway(): { code: number; debug: string } | undefined {
    return this.goaways[0];
  }

  write(b: Buffer): boolean {
    if (this.socket.destroyed) return false;
    return this.socket.write(b);
  }

  /** HEADERS (END_HEADERS) of `fields` on `stream`. */
  headers(stream: number, fields: readonly (readonly [string, string | Buffer])[], endStream = false): boolean {
    return this.write(
      frame(FRAME.headers, FLAG.endHeaders | (endStream ? FLAG.endStream : 0), stream, headerBlock(fields)),
    );
  }

  /**
   * A header block of any size: HEADERS then CONTINUATION frames of at most
   * 16 KiB (the default SETTINGS_MAX_FRAME_SIZE), END_HEADERS on the last
   * unless `endHeaders` is false (a block that never ends).
   */
  headerBlock(stream: number, block: Buffer, endHeaders = true): boolean {
    const MAX = 16384;
    let ok = true;
    for (let at = 0, first = true; first || at < block.length; at += MAX, first = false) {
      const chunk = block.subarray(at, at + MAX);
      const last = at + MAX >= block.length;
      const flags = last && endHeaders ? FLAG.endHeaders : 0;
      ok = this.write(frame(first ? FRAME.headers : FRAME.continuation, flags, stream, chunk)) && ok;
    }
    return ok;
  }

  ping(): boolean {
    return this.write(frame(FRAME.ping, 0, 0, Buffer.alloc(8)));
  }

  destroy(): void {
    this.socket.destroy();
  }
}
