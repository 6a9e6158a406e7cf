import { Client, credentials, Metadata, status, type ChannelCredentials, type ServiceError } from "@grpc/grpc-js";
import * as admin from "../../src/gen/agentstate/v1/admin";
import * as checkpoint from "../../src/gen/agentstate/v1/checkpoint";
import * as event from "../../src/gen/agentstate/v1/event";
import * as kv from "../../src/gen/agentstate/v1/kv";
import * as lock from "../../src/gen/agentstate/v1/lock";
import * as store from "../../src/gen/agentstate/v1/store";
import { testTlsOptions } from "./testTlsOptions";

interface MethodDef {
  path: string;
  requestStream: boolean;
  responseStream: boolean;
  requestSerialize(v: unknown): Buffer;
  responseDeserialize(b: Buffer): unknown;
  /** The request message's fromPartial (ts-proto's encoders need every field). */
  fromPartial(v: unknown): unknown;
}

/** Every agentstate.v1 method by its RPC name (Get, Subscribe, CreateToken, ...). */
export const METHODS: Record<string, MethodDef> = {};
for (const mod of [kv, lock, event, admin, store, checkpoint] as unknown as Record<string, unknown>[]) {
  for (const [name, svc] of Object.entries(mod)) {
    if (!name.endsWith("ServiceService")) continue;
    for (const def of Object.values(svc as object) as MethodDef[]) {
      const rpc = def.path.slice(def.path.lastIndexOf("/") + 1);
      const msg = mod[`${rpc}Request`] as { fromPartial(v: unknown): unknown };
      METHODS[rpc] = { ...def, fromPartial: (v) => msg.fromPartial(v) };
    }
  }
}

export interface RpcOutcome {
  code: status;
  details: string;
  /** The reply (unary) or the first message (streams). */
  reply: unknown;
}

/**
 * Calls `rpc` with `req` and `bearer` (none when undefined; sent verbatim as
 * the authorization value when it starts with "!"). A stream is cancelled
 * after its first message (which counts as OK) or ended with its status.
 */
export class RpcByName {
  readonly client: Client;

  constructor(address: string, creds: ChannelCredentials = credentials.createInsecure()) {
    this.client = new Client(address, creds, testTlsOptions(creds));
  }

  call(rpc: string, req: unknown, bearer?: string, md?: Metadata): Promise<RpcOutcome> {
    const def = METHODS[rpc];
    if (!def) throw new Error(`no method ${rpc}`);
    const metadata = md ?? new Metadata();
    if (bearer !== undefined)
      metadata.set("authorization", bearer.startsWith("!") ? bearer.slice(1) : `Bearer ${bearer}`);
    const opts = { deadline: Date.now() + 10_000 };
    req = def.fromPartial(req);
    if (!def.responseStream) {
      return new Promise((resolve) =>
        this.client.makeUnaryRequest(
          def.path,
          def.requestSerialize,
          def.responseDeserialize,
          req,
          metadata,
          opts,
          (err: ServiceError | null, reply?: unknown) =>
            resolve(
              err
                ? { code: err.code, details: err.details, reply: undefined }
                : { code: status.OK, details: "", reply },
            ),
        ),
      );
    }
    if (def.requestStream) return this.session(def, req, metadata, opts);
    const stream = this.client.makeServerStreamRequest(
      def.path,
      def.requestSerialize,
      def.responseDeserialize,
      req,
      metadata,
      opts,
    );
    return new Promise((resolve) => {
      let done = false;
      stream.on("data", (reply: unknown) => {
        if (done) return;
        done = true;
        stream.cancel();
        resolve({ code: status.OK, details: "", reply });
      });
      stream.on("error", (err: ServiceError) => {
        if (!done) resolve({ code: err.code, details: err.details, reply: undefined });
        done = true;
      });
      stream.on("status", (s: { code: status; details: string }) => {
        if (!done) resolve({ code: s.code, details: s.details, reply: undefined });
        done = true;
      });
    });
  }

  /**
   * A bidirectional Session: `req` is its one call. The stream's own end
   * (refused at open) is the outcome, else the call's result: its
   * SessionStatus as the code and details, or OK with the response.
   */
  private session(def: MethodDef, req: unknown, metadata: Metadata, opts: { deadline: number }): Promise<RpcOutcome> {
    const stream = this.client.makeBidiStreamRequest(
      def.path,
      def.requestSerialize,
      def.responseDeserialize,
      metadata,
      opts,
    );
    return new Promise((resolve) => {
      let done = false;
      const settle = (o: RpcOutcome) => {
        if (!done) resolve(o);
        done = true;
      };
      stream.on("data", (reply: { status?: { code: status; message: string } }) => {
        settle(
          reply.status
            ? { code: reply.status.code, details: reply.status.message, reply }
            : { code: status.OK, details: "", reply },
        );
        stream.end();
      });
      stream.on("error", (err: ServiceError) => settle({ code: err.code, details: err.details, reply: undefined }));
      stream.on("status", (s: { code: status; details: string }) =>
        settle({ code: s.code, details: s.details, reply: undefined }),
      );
      stream.write(req);
    });
  }

  close(): void {
    this.client.close();
  }
}
