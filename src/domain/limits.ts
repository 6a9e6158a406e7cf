/**
 * Limits: every bound the edge enforces, as one named setting each. Values come
 * from configuration; the generated clients mirror them (see README, "Limits").
 */
export interface Limits {
  readonly maxKeyBytes: number;
  readonly maxValueBytes: number;
  readonly maxContentTypeBytes: number;
  readonly maxIdempotencyKeyBytes: number;
  readonly maxOwnerBytes: number;
  readonly listDefaultLimit: number;
  readonly listMaxLimit: number;
  readonly maxTtlSeconds: number;
  readonly maxLockTtlSeconds: number;
  readonly maxLockWaitSeconds: number;
  readonly maxEventsPerAppend: number;
  readonly maxEventMetadataEntries: number;
  readonly maxEventTypeBytes: number;
  readonly maxEventBytes: number;
  readonly maxAppendBytes: number;
  readonly maxMessageBytes: number;
  /** Open Subscribe streams per server and per namespace. */
  readonly maxSubscribers: number;
  readonly maxSubscribersPerNamespace: number;
  /** Open ReadStream calls per server. */
  readonly maxReadStreams: number;
  /** Open CheckpointService.Session streams per server, and calls in flight per stream. */
  readonly maxSessions: number;
  readonly maxSessionCalls: number;
}
