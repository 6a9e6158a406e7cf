"""A real LangGraph graph (the langgraph runtime) on AgentstateSaver and
AgentstateStore: runs, resumes a thread, reads its history, and time-travels
(a fork from an earlier checkpoint: refused in strict mode, allowed without)."""

from __future__ import annotations

import operator
import secrets
from typing import Annotated, TypedDict

import pytest

from agentstate import Client
from langgraph.checkpoint.agentstate import AgentstateSaver, CheckpointConflict
from langgraph.graph import END, START, StateGraph
from langgraph.store.agentstate import AgentstateStore
from langgraph.store.base import BaseStore


class State(TypedDict):
    log: Annotated[list[str], operator.add]


def _graph(saver: AgentstateSaver, store: AgentstateStore):
    def plan(state: State, *, store: BaseStore) -> State:
        store.put(("runs",), "last-plan", {"seen": len(state["log"])})
        return {"log": ["plan"]}

    def act(state: State) -> State:
        return {"log": ["act"]}

    b = StateGraph(State)
    b.add_node("plan", plan)
    b.add_node("act", act)
    b.add_edge(START, "plan")
    b.add_edge("plan", "act")
    b.add_edge("act", END)
    return b.compile(checkpointer=saver, store=store)


@pytest.mark.parametrize("strict", [True, False])
def test_graph_runs_resumes_and_time_travels(client: Client, namespace: str, strict: bool) -> None:
    store = AgentstateStore(client, namespace)
    graph = _graph(AgentstateSaver(client, namespace, strict=strict), store)
    config = {"configurable": {"thread_id": f"t-{secrets.token_hex(4)}"}}
    assert graph.invoke({"log": ["start"]}, config)["log"] == ["start", "plan", "act"]
    assert graph.invoke({"log": ["again"]}, config)["log"] == ["start", "plan", "act", "again", "plan", "act"]
    item = store.get(("runs",), "last-plan")
    assert item is not None and item.value == {"seen": 4}

    history = list(graph.get_state_history(config))
    assert len(history) == 8 and history[-1].metadata["step"] == -1
    # Time travel: re-run from the checkpoint taken before "act" in the first run.
    before_act = next(s for s in history if s.next == ("act",) and s.values["log"] == ["start", "plan"])
    if strict:
        with pytest.raises(CheckpointConflict) as e:
            graph.invoke(None, before_act.config)
        assert e.value.head == history[0].config["configurable"]["checkpoint_id"]
        assert len(list(graph.get_state_history(config))) == 8, "nothing written"
        # A deliberate fork says so, and strict mode lets it through.
        fork = {"configurable": {**before_act.config["configurable"], "agentstate_fork": True}}
        assert graph.invoke(None, fork)["log"] == ["start", "plan", "act"]
        assert graph.get_state(config).values["log"] == ["start", "plan", "act"]
    else:
        assert graph.invoke(None, before_act.config)["log"] == ["start", "plan", "act"]
        # The fork's checkpoints join the thread; its head is now the fork's end.
        assert len(list(graph.get_state_history(config))) > 8
        assert graph.get_state(config).values["log"] == ["start", "plan", "act"]
