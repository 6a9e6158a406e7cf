// The live server the tests run against: AGENTSTATE_ADDRESS (set by .ci/clients), one
// fresh namespace per saver so every checkpointer the suites create starts empty.
import { randomBytes } from "node:crypto";
import { AgentstateClient } from "@agentstate/client";
import { AgentstateSaver, type AgentstateSaverOptions } from "../src";

const address = process.env.AGENTSTATE_ADDRESS;
if (!address) throw new Error("set AGENTSTATE_ADDRESS to a live agentstate server (see README, Tests)");

export const client = new AgentstateClient(address, { deadlineMs: 30_000 });

export const freshNamespace = (prefix = "lg") => `${prefix}-${randomBytes(6).toString("hex")}`;

export function saver(options: Partial<AgentstateSaverOptions> = {}): AgentstateSaver {
  return new AgentstateSaver({ client, namespace: freshNamespace(), ...options });
}
