export { AgentstateSaver, type AgentstateSaverOptions } from "./AgentstateSaver";
export { CheckpointConflictError, CheckpointInputError } from "./errors";
