/**
 * AgentstateClient: a small promise-based client for agentstate.v1 over the
 * grpc-js clients that ts-proto generates from proto/ (see ./gen, produced by
 * `npm run gen`). It adds three things and nothing else:
 *
 * - requests may be partial (`{ namespace, key }`); missing fields take their
 *   protobuf defaults through the generated `X.fromPartial`;
 * - every call carries a deadline (default 10 s), so no call can hang forever;
 * - the message size limit matches the server's default, so the transport
 *   never refuses what the server would accept or send.
 *
 * Errors are the grpc-js ServiceError as received: `code` (a grpc `status`),
 * `details` (for INVALID_ARGUMENT it names the field and the limit) and the
 * trailing `metadata` (`agentstate-field`, `agentstate-reason`). A
 * compare-and-set mismatch is not an error: it answers `applied: false` with
 * the current item. Idiomatic helpers (update loops, locks) build on this.
 */
import {
  credentials as grpcCredentials,
  Metadata,
  type CallOptions as GrpcCallOptions,
  type ChannelCredentials,
  type ClientUnaryCall,
  type ServiceError,
} from "@grpc/grpc-js";
import {
  CompareAndSetRequest,
  DeleteRequest,
  GetRequest,
  KeyValueServiceClient,
  ListRequest,
  type CompareAndSetResponse,
  type DeepPartial,
  type DeleteResponse,
  type GetResponse,
  type ListResponse,
} from "./gen/agentstate/v1/kv";

/**
 * The server's default gRPC message limit: the larger of the value limit
 * (AGENTSTATE_MAX_VALUE_BYTES, 1 MiB) and the append-batch limit
 * (AGENTSTATE_MAX_APPEND_BYTES, 4 MiB), plus 64 KiB of envelope. The server
 * sizes List pages up to this limit, so a client must accept replies that big.
 */
export const DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024 + 64 * 1024;

export const DEFAULT_DEADLINE_MS = 10_000;

export interface AgentstateClientOptions {
  /** Deadline of every call unless the call says otherwise. Default 10 000 ms. */
  deadlineMs?: number;
  /** gRPC send and receive message limit; set it to the server's limit. Default DEFAULT_MAX_MESSAGE_BYTES. */
  maxMessageBytes?: number;
  /** Channel credentials. Default: insecure (plaintext). */
  credentials?: ChannelCredentials;
}

/** Per-call options. */
export interface CallOptions {
  /** Overrides the client's deadline for this call. */
  deadlineMs?: number;
  /** Request metadata, e.g. an `x-request-id` to correlate with the server's log. */
  metadata?: Metadata;
}

type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<GrpcCallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientUnaryCall;

export class AgentstateClient {
  /** The generated key-value client, for anything this wrapper does not cover. */
  readonly kv: KeyValueServiceClient;
  private readonly deadlineMs: number;

  constructor(
    readonly address: string,
    options: AgentstateClientOptions = {},
  ) {
    this.deadlineMs = options.deadlineMs ?? DEFAULT_DEADLINE_MS;
    const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.kv = new KeyValueServiceClient(address, options.credentials ?? grpcCredentials.createInsecure(), {
      "grpc.max_send_message_length": maxMessageBytes,
      "grpc.max_receive_message_length": maxMessageBytes,
    });
  }

  /** Reads one key. A missing or expired key answers `found: false`. */
  get(request: DeepPartial<GetRequest>, options?: CallOptions): Promise<GetResponse> {
    return this.unary(this.kv.get, GetRequest.fromPartial(request), options);
  }

  /** Writes a key if `request.expected` holds; a mismatch answers `applied: false` with the current item. */
  compareAndSet(request: DeepPartial<CompareAndSetRequest>, options?: CallOptions): Promise<CompareAndSetResponse> {
    return this.unary(this.kv.compareAndSet, CompareAndSetRequest.fromPartial(request), options);
  }

  /** Removes a key if `request.expected` holds, with the same compare semantics. */
  delete(request: DeepPartial<DeleteRequest>, options?: CallOptions): Promise<DeleteResponse> {
    return this.unary(this.kv.delete, DeleteRequest.fromPartial(request), options);
  }

  /** One page of keys under a prefix, in byte order; pass `next_page_token` back for the next page. */
  list(request: DeepPartial<ListRequest>, options?: CallOptions): Promise<ListResponse> {
    return this.unary(this.kv.list, ListRequest.fromPartial(request), options);
  }

  /** Closes the channel. Calls in flight fail with CANCELLED or UNAVAILABLE. */
  close(): void {
    this.kv.close();
  }

  private unary<Req, Res>(method: UnaryMethod<Req, Res>, request: Req, options: CallOptions = {}): Promise<Res> {
    const deadline = new Date(Date.now() + (options.deadlineMs ?? this.deadlineMs));
    return new Promise<Res>((resolve, reject) => {
      method.call(this.kv, request, options.metadata ?? new Metadata(), { deadline }, (err, res) =>
        err ? reject(err) : resolve(res),
      );
    });
  }
}
