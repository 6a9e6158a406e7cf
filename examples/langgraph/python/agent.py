"""A research-agent-like LangGraph graph without an LLM (tools simulated,
every output deterministic), persisted in agentstate through AgentstateSaver.

    plan -> tool -> tool -> tool -> summarise

Commands (the thread is the agentstate checkpoint thread; see ../README.md):

    agent.py run THREAD TOPIC [--block-at N]   start the thread, or resume it from its last checkpoint
    agent.py history THREAD                    the thread's checkpoints, newest first
    agent.py fork THREAD TOPIC                 time travel to the checkpoint after "plan", fork with another topic

Every node appends one line to $EFFECTS_FILE before it returns (its side
effect, as a real tool call would have one): a step that ran twice shows twice.
`--block-at N` makes tool call N wait forever before its side effect (the
driver kills the process there with SIGKILL).
"""

from __future__ import annotations

import hashlib
import json
import operator
import os
import sys
import time
from typing import Annotated, Any, TypedDict

from agentstate import Client
from langgraph.checkpoint.agentstate import AgentstateSaver, CheckpointConflict
from langgraph.graph import END, START, StateGraph

NAMESPACE = "examples-langgraph-py"


class State(TypedDict, total=False):
    topic: str
    queries: list[str]
    findings: Annotated[list[str], operator.add]
    summary: str


def plan_for(topic: str) -> list[str]:
    return [f"{topic}: background", f"{topic}: open problems", f"{topic}: recent results"]


def search_tool(query: str) -> str:
    """The simulated tool: a deterministic 'search result' for a query."""
    return f"{query} -> doc-{hashlib.sha256(query.encode()).hexdigest()[:8]}"


def effect(thread: str, line: str) -> None:
    with open(os.environ["EFFECTS_FILE"], "a", encoding="utf-8") as f:
        f.write(f"{thread} {line}\n")


def build(saver: AgentstateSaver, block_at: int | None):
    def plan(state: State, config) -> State:
        effect(config["configurable"]["thread_id"], f"plan {state['topic']}")
        return {"queries": plan_for(state["topic"])}

    def tool(state: State, config) -> State:
        call = len(state.get("findings", [])) + 1
        if call == block_at:
            print(f"blocked: in tool call {call}", flush=True)
            while True:
                time.sleep(3600)
        query = state["queries"][call - 1]
        effect(config["configurable"]["thread_id"], f"tool {query}")
        return {"findings": [search_tool(query)]}

    def summarise(state: State, config) -> State:
        effect(config["configurable"]["thread_id"], "summarise")
        return {"summary": f"{state['topic']}: {len(state['findings'])} findings"}

    def after_tool(state: State) -> str:
        return "tool" if len(state["findings"]) < len(state["queries"]) else "summarise"

    b = StateGraph(State)
    b.add_node("plan", plan)
    b.add_node("tool", tool)
    b.add_node("summarise", summarise)
    b.add_edge(START, "plan")
    b.add_edge("plan", "tool")
    b.add_conditional_edges("tool", after_tool, ["tool", "summarise"])
    b.add_edge("summarise", END)
    return b.compile(checkpointer=saver)


def show(values: dict[str, Any]) -> str:
    """Values as sorted-key JSON, `findings` [] when unset (the same line the TypeScript example prints)."""
    return json.dumps({"findings": [], **values}, sort_keys=True)


def fail(message: str) -> None:
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def main(argv: list[str]) -> None:
    command, thread = argv[0], argv[1]
    block_at = int(argv[argv.index("--block-at") + 1]) if "--block-at" in argv else None
    with Client(os.environ.get("AGENTSTATE_ADDRESS", "127.0.0.1:50051")) as client:
        graph = build(AgentstateSaver(client, NAMESPACE), block_at)
        config = {"configurable": {"thread_id": thread}}
        # durability="sync": each step's checkpoint is stored before the next step starts.
        if command == "run":
            state = graph.get_state(config)
            if state.next:
                print(f"resume: from step {state.metadata['step']}, next {json.dumps(list(state.next))}", flush=True)
                final = graph.invoke(None, config, durability="sync")
            elif state.values:
                final = state.values
            else:
                print(f"start: {argv[2]}", flush=True)
                final = graph.invoke({"topic": argv[2]}, config, durability="sync")
            print(f"final: {show(final)}")
        elif command == "history":
            for s in graph.get_state_history(config):
                print(f"step {s.metadata['step']}: next {json.dumps(list(s.next))}, {len(s.values.get('findings', []))} findings")
        elif command == "fork":
            history = list(graph.get_state_history(config))
            head = history[0]
            # Time travel: the checkpoint taken after "plan", before any tool call.
            then = next(s for s in history if s.next == ("tool",) and not s.values.get("findings"))
            past = graph.get_state(then.config)
            print(f"as of step {past.metadata['step']}: {show(past.values)}")
            # Fork: a new checkpoint whose parent is that older one, with another topic
            # (and so another plan). Strict mode refuses a put whose parent is not the
            # thread's head (nothing is written) unless the config says it forks on purpose.
            topic = argv[2]
            try:
                graph.update_state(then.config, {"topic": topic, "queries": plan_for(topic)}, as_node="plan")
                fail("strict mode let a put on an older checkpoint through without agentstate_fork")
            except CheckpointConflict as e:
                if e.head != head.config["configurable"]["checkpoint_id"]:
                    fail(f"the conflict names {e.head} as the head, not the latest checkpoint")
                print(f"strict: without agentstate_fork the fork is refused, the head is step {head.metadata['step']}")
            fork_config = {"configurable": {**then.config["configurable"], "agentstate_fork": True}}
            forked = graph.update_state(fork_config, {"topic": topic, "queries": plan_for(topic)}, as_node="plan")
            fork_point = graph.get_state(forked)
            parent = fork_point.parent_config["configurable"]["checkpoint_id"]
            if parent != then.config["configurable"]["checkpoint_id"]:
                fail(f"the fork's parent is {parent}, not the checkpoint after plan")
            print(f"fork: parent is the checkpoint of step {past.metadata['step']}, next {json.dumps(list(fork_point.next))}")
            final = graph.invoke(None, forked, durability="sync")
            print(f"final: {show(final)}")
            # The original branch is still there, unchanged.
            print(f"original branch: {show(graph.get_state(head.config).values)}")
        else:
            fail(f"unknown command {command}")


if __name__ == "__main__":
    main(sys.argv[1:])
