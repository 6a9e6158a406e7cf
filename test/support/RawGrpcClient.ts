/**
 * A grpc-js client that sends request payloads as raw bytes (a passthrough
 * serializer) and returns replies as raw bytes with their status, so tests can
 * send what no generated client would: random bytes, malformed protobuf,
 * invalid UTF-8, oversized messages. Every call has a deadline; a server
 * stream is read until it ends, `maxMessages` arrive, or `cancelAfterMs`
 * passes (then it is cancelled, and reported as such).
 */
import { Client, credentials, Metadata, status, type ServiceError, type StatusObject } from "@grpc/grpc-js";

export interface RawReply {
  code: status;
  details: string;
  metadata: Metadata;
  /** Reply messages (one for a unary OK). */
  messages: Buffer[];
  /** True when the test cancelled a server stream that was still open (not a server error). */
  cancelledByUs: boolean;
}

const passthrough = (b: Buffer) => b;

export class RawGrpcClient {
  private readonly client: Client;

  constructor(address: string) {
    this.client = new Client(address, credentials.createInsecure(), {
      "grpc.max_send_message_length": -1,
      "grpc.max_receive_message_length": -1,
    });
  }

  unary(path: string, payload: Buffer, deadlineMs = 5000): Promise<RawReply> {
    return new Promise((resolve) => {
      const call = this.client.makeUnaryRequest(
        path,
        passthrough,
        passthrough,
        payload,
        new Metadata(),
        { deadline: new Date(Date.now() + deadlineMs) },
        (err: ServiceError | null, res?: Buffer) => {
          if (err) {
            resolve({
              code: err.code,
              details: err.details,
              metadata: err.metadata,
              messages: [],
              cancelledByUs: false,
            });
          } else {
            resolve({
              code: status.OK,
              details: "",
              metadata: new Metadata(),
              messages: res ? [res] : [],
              cancelledByUs: false,
            });
          }
        },
      );
      void call;
    });
  }

  serverStream(
    path: string,
    payload: Buffer,
    opts: { deadlineMs?: number; maxMessages?: number; cancelAfterMs?: number } = {},
  ): Promise<RawReply> {
    return new Promise((resolve) => {
      const messages: Buffer[] = [];
      let cancelledByUs = false;
      const call = this.client.makeServerStreamRequest(path, passthrough, passthrough, payload, new Metadata(), {
        deadline: new Date(Date.now() + (opts.deadlineMs ?? 5000)),
      });
      const timer = setTimeout(() => {
        cancelledByUs = true;
        call.cancel();
      }, opts.cancelAfterMs ?? 1000);
      call.on("data", (m: Buffer) => {
        messages.push(m);
        if (messages.length >= (opts.maxMessages ?? 1000)) {
          cancelledByUs = true;
          call.cancel();
        }
      });
      let settled = false;
      const done = (code: status, details: string, metadata: Metadata) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve({ code, details, metadata, messages, cancelledByUs: cancelledByUs && code === status.CANCELLED });
      };
      call.on("error", (e: ServiceError) => done(e.code, e.details, e.metadata));
      call.on("status", (s: StatusObject) => done(s.code, s.details, s.metadata));
    });
  }

  close(): void {
    this.client.close();
  }
}
