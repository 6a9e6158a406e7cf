/**
 * Promise wrappers over the generated grpc-js LockServiceClient, for the lock
 * integration tests. Requests are always built with `X.fromPartial` (the
 * generated encoders would otherwise write missing strings as "undefined").
 * Every call carries a deadline (default 60 s) so no test can hang forever.
 */
import { credentials, Metadata, type ClientUnaryCall, type ServiceError } from "@grpc/grpc-js";
import type { Duration } from "../../clients/typescript/src/gen/google/protobuf/duration";
import {
  LockRequest,
  LockServiceClient,
  RenewLockRequest,
  UnlockRequest,
  type DeepPartial,
  type LockResponse,
  type RenewLockResponse,
  type UnlockResponse,
} from "../../clients/typescript/src/gen/agentstate/v1/lock";

export const DEFAULT_LOCK_DEADLINE_MS = 60_000;

/** A protobuf Duration of `ms` milliseconds (negative values give negative seconds and nanos). */
export function duration(ms: number): Duration {
  const seconds = Math.trunc(ms / 1000);
  return { seconds, nanos: Math.round((ms - seconds * 1000) * 1_000_000) };
}

export interface LockCallOptions {
  /** Deadline of this call, from now. Default 60 s. */
  deadlineMs?: number;
  /** Sent as `x-request-id`, to find the call's line in the server log. */
  requestId?: string;
}

/** A call in flight: `call.cancel()` cancels it client-side; `result` settles with its outcome. */
export interface PendingCall<Res> {
  call: ClientUnaryCall;
  result: Promise<Res>;
}

type Unary<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: { deadline: Date },
  callback: (err: ServiceError | null, res: Res) => void,
) => ClientUnaryCall;

export class LockClient {
  readonly raw: LockServiceClient;

  constructor(readonly address: string) {
    this.raw = new LockServiceClient(address, credentials.createInsecure());
  }

  lock(req: DeepPartial<LockRequest>, opts?: LockCallOptions): Promise<LockResponse> {
    return this.lockCall(req, opts).result;
  }

  /** Lock, returning the call handle too (for cancel()). */
  lockCall(req: DeepPartial<LockRequest>, opts?: LockCallOptions): PendingCall<LockResponse> {
    return this.start(this.raw.lock, LockRequest.fromPartial(req), opts);
  }

  unlock(req: DeepPartial<UnlockRequest>, opts?: LockCallOptions): Promise<UnlockResponse> {
    return this.start(this.raw.unlock, UnlockRequest.fromPartial(req), opts).result;
  }

  renewLock(req: DeepPartial<RenewLockRequest>, opts?: LockCallOptions): Promise<RenewLockResponse> {
    return this.start(this.raw.renewLock, RenewLockRequest.fromPartial(req), opts).result;
  }

  close(): void {
    this.raw.close();
  }

  private start<Req, Res>(method: Unary<Req, Res>, req: Req, opts: LockCallOptions = {}): PendingCall<Res> {
    const md = new Metadata();
    if (opts.requestId !== undefined) md.set("x-request-id", opts.requestId);
    const deadline = new Date(Date.now() + (opts.deadlineMs ?? DEFAULT_LOCK_DEADLINE_MS));
    let call!: ClientUnaryCall;
    const result = new Promise<Res>((resolve, reject) => {
      call = method.call(this.raw, req, md, { deadline }, (err, res) => (err ? reject(err) : resolve(res)));
    });
    return { call, result };
  }
}
