export { AgentstateSaver, type AgentstateSaverOptions } from "./AgentstateSaver";
export { CheckpointConflictError, CheckpointInputError } from "./errors";
export {
  AgentstateStore,
  MAX_PAGE,
  type AgentstateGetOperation,
  type AgentstatePutOperation,
  type AgentstateSearchOperation,
  type AgentstateStoreOptions,
  type StoreTtlConfig,
} from "./AgentstateStore";
