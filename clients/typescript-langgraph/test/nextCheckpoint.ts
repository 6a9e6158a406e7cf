// The next checkpoint of a test's loop, as LangGraph makes one.
import { emptyCheckpoint, uuid6, type Checkpoint } from "@langchain/langgraph-checkpoint";
import type { AgentstateSaver } from "../src";

/** A checkpoint with new values for `values`' channels, versions one past `prev`'s. */
export function next(prev: Checkpoint | undefined, values: Record<string, unknown>, s: AgentstateSaver) {
  const base = prev ?? emptyCheckpoint();
  const channel_versions = { ...base.channel_versions };
  const newVersions: Record<string, string> = {};
  for (const ch of Object.keys(values)) {
    channel_versions[ch] = newVersions[ch] = s.getNextVersion(base.channel_versions[ch] as string | undefined);
  }
  const checkpoint: Checkpoint = {
    ...base,
    id: uuid6(-1),
    ts: new Date().toISOString(),
    channel_values: { ...base.channel_values, ...values },
    channel_versions,
  };
  return { checkpoint, newVersions };
}
