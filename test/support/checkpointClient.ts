import { credentials, Metadata, type CallOptions, type ServiceError } from "@grpc/grpc-js";
import {
  CheckpointServiceClient,
  CopyThreadRequest,
  DeleteForRunsRequest,
  DeleteThreadRequest,
  GetCheckpointRequest,
  ListCheckpointsRequest,
  PruneCheckpointsRequest,
  PutCheckpointRequest,
  PutWritesRequest,
  type CopyThreadResponse,
  type DeepPartial,
  type DeleteForRunsResponse,
  type DeleteThreadResponse,
  type GetCheckpointResponse,
  type ListCheckpointsResponse,
  type PruneCheckpointsResponse,
  type PutCheckpointResponse,
  type PutWritesResponse,
} from "../../clients/typescript/src/gen/agentstate/v1/checkpoint";

type Callback = (err: ServiceError | null, res: unknown) => void;
type UnaryMethod = (req: unknown, md: Metadata, opts: Partial<CallOptions>, cb: Callback) => unknown;

/** CheckpointService over real gRPC, promise-based, no size limits of its own (the server's apply). */
export class CheckpointClient {
  readonly raw: CheckpointServiceClient;

  constructor(readonly address: string) {
    this.raw = new CheckpointServiceClient(address, credentials.createInsecure(), {
      "grpc.max_receive_message_length": -1,
      "grpc.max_send_message_length": -1,
    });
  }

  private call<Res>(method: string, req: unknown): Promise<Res> {
    const fn = (this.raw as unknown as Record<string, UnaryMethod>)[method]!;
    return new Promise((resolve, reject) =>
      fn.call(this.raw, req, new Metadata(), { deadline: new Date(Date.now() + 30_000) }, (err, res) =>
        err ? reject(err) : resolve(res as Res),
      ),
    );
  }

  put(r: DeepPartial<PutCheckpointRequest>): Promise<PutCheckpointResponse> {
    return this.call<PutCheckpointResponse>("putCheckpoint", PutCheckpointRequest.fromPartial(r));
  }
  putWrites(r: DeepPartial<PutWritesRequest>): Promise<PutWritesResponse> {
    return this.call<PutWritesResponse>("putWrites", PutWritesRequest.fromPartial(r));
  }
  get(r: DeepPartial<GetCheckpointRequest>): Promise<GetCheckpointResponse> {
    return this.call<GetCheckpointResponse>("getCheckpoint", GetCheckpointRequest.fromPartial(r));
  }
  list(r: DeepPartial<ListCheckpointsRequest>): Promise<ListCheckpointsResponse> {
    return this.call<ListCheckpointsResponse>("listCheckpoints", ListCheckpointsRequest.fromPartial(r));
  }
  deleteThread(r: DeepPartial<DeleteThreadRequest>): Promise<DeleteThreadResponse> {
    return this.call<DeleteThreadResponse>("deleteThread", DeleteThreadRequest.fromPartial(r));
  }
  copyThread(r: DeepPartial<CopyThreadRequest>): Promise<CopyThreadResponse> {
    return this.call<CopyThreadResponse>("copyThread", CopyThreadRequest.fromPartial(r));
  }
  prune(r: DeepPartial<PruneCheckpointsRequest>): Promise<PruneCheckpointsResponse> {
    return this.call<PruneCheckpointsResponse>("pruneCheckpoints", PruneCheckpointsRequest.fromPartial(r));
  }
  deleteForRuns(r: DeepPartial<DeleteForRunsRequest>): Promise<DeleteForRunsResponse> {
    return this.call<DeleteForRunsResponse>("deleteForRuns", DeleteForRunsRequest.fromPartial(r));
  }

  close(): void {
    this.raw.close();
  }
}
