/**
 * The agentstate TypeScript client: AgentstateClient plus the message types,
 * enums and grpc-js service clients generated from proto/agentstate/v1.
 *
 * The generated files each declare the same helpers (DeepPartial, MessageFns,
 * protobufPackage, protobufFileName), so `export *` of several of them is
 * ambiguous: the public names are listed here instead. A new message in
 * proto/ needs a line here.
 */
export * from "./AgentstateClient";
export {
  CheckpointSession,
  DEFAULT_SESSION_MAX_AGE_MS,
  DEFAULT_SESSION_MAX_CALLS,
  type SessionCallOptions,
  type SessionCalls,
  type SessionMethod,
} from "./CheckpointSession";
export { serviceError, sessionStatusError } from "./serviceError";
export * from "./backoff";
export * from "./duration";
export * from "./errors";
export { tokenInterceptor, type TokenSource } from "./token";
export {
  newEventId,
  type AppendOptions,
  type AppendResult,
  type EventPayload,
  type ExpectedVersion,
  type NewEvent,
  type ReadStreamOptions,
} from "./events";
export {
  SUBSCRIBE_BACKOFF,
  Subscription,
  isResumable,
  type ReconnectInfo,
  type SubscribeOptions,
  type SubscriptionMessage,
  type SubscriptionTarget,
} from "./Subscription";
export {
  Fence,
  Item,
  ResponseHeader,
  protobufPackage,
  type DeepPartial,
  type MessageFns,
} from "./gen/agentstate/v1/common";
export {
  CompareAndSetRequest,
  CompareAndSetResponse,
  Consistency,
  DeleteRequest,
  DeleteResponse,
  Expected,
  GetRequest,
  GetResponse,
  KeyValueServiceClient,
  KeyValueServiceService,
  ListRequest,
  ListResponse,
  consistencyFromJSON,
  consistencyToJSON,
  type KeyValueServiceServer,
} from "./gen/agentstate/v1/kv";
export {
  LockRequest,
  LockResponse,
  LockServiceClient,
  LockServiceService,
  RenewLockRequest,
  RenewLockResponse,
  UnlockRequest,
  UnlockResponse,
  type LockServiceServer,
} from "./gen/agentstate/v1/lock";
export {
  AppendEventRequest,
  AppendEventResponse,
  CaughtUp,
  Direction,
  EventData,
  EventData_MetadataEntry,
  EventServiceClient,
  EventServiceService,
  ExpectedStream,
  ReadStreamRequest,
  ReadStreamResponse,
  RecordedEvent,
  RecordedEvent_MetadataEntry,
  SubscribeRequest,
  SubscribeResponse,
  directionFromJSON,
  directionToJSON,
  type EventServiceServer,
} from "./gen/agentstate/v1/event";
export {
  DeleteItemRequest,
  DeleteItemResponse,
  GetItemRequest,
  GetItemResponse,
  ListPathsRequest,
  ListPathsResponse,
  PutItemRequest,
  PutItemResponse,
  SearchItemsRequest,
  SearchItemsResponse,
  StoreItem,
  StorePath,
  StoreServiceClient,
  StoreServiceService,
  type StoreServiceServer,
} from "./gen/agentstate/v1/store";
export {
  CheckpointDeltas,
  MIN_DELTA_VALUE_BYTES,
  isDeltaBaseError,
  makeValueDelta,
  type CheckpointDeltaStats,
  type CheckpointDeltasOptions,
  type DeltaPlan,
  type ThreadAddress,
  type WholeChannelValue,
} from "./checkpointDeltas";
export {
  ChannelValue,
  ChannelValueDelta,
  Checkpoint,
  CheckpointServiceClient,
  CheckpointServiceService,
  CopyThreadRequest,
  CopyThreadResponse,
  DeleteForRunsRequest,
  DeleteForRunsResponse,
  DeleteThreadRequest,
  DeleteThreadResponse,
  GetCheckpointRequest,
  GetCheckpointResponse,
  ListCheckpointsRequest,
  ListCheckpointsResponse,
  PendingWrite,
  PruneCheckpointsRequest,
  PruneCheckpointsResponse,
  PutCheckpointRequest,
  PutCheckpointResponse,
  PutWritesRequest,
  PutWritesResponse,
  SessionRequest,
  SessionResponse,
  SessionStatus,
  SessionStatus_MetadataEntry,
  TypedValue,
  WriteValue,
  type CheckpointServiceServer,
} from "./gen/agentstate/v1/checkpoint";
export {
  AdminServiceClient,
  AdminServiceService,
  CreateTokenRequest,
  CreateTokenResponse,
  Grant,
  ListTokensRequest,
  ListTokensResponse,
  RevokeTokenRequest,
  RevokeTokenResponse,
  Role,
  TokenInfo,
  roleFromJSON,
  roleToJSON,
  type AdminServiceServer,
} from "./gen/agentstate/v1/admin";
export { Duration } from "./gen/google/protobuf/duration";
export { Timestamp } from "./gen/google/protobuf/timestamp";
