"""AgentstateSaver against a live server, beyond the conformance suite: the
sync API, strict mode (two workers on one thread: no silent fork), large
channel values and pending writes, the checkpoint size limit, retention by
prune, and bad input."""

from __future__ import annotations

import secrets
import threading
from typing import Any

import grpc
import pytest

from agentstate import Client
from langgraph.checkpoint.agentstate import AgentstateSaver, CheckpointConflict, CheckpointInputError
from langgraph.checkpoint.base import Checkpoint, create_checkpoint, empty_checkpoint


@pytest.fixture
def saver(client: Client, namespace: str) -> AgentstateSaver:
    return AgentstateSaver(client, namespace)


def _config(thread: str, checkpoint_id: str | None = None, ns: str = "") -> dict[str, Any]:
    conf: dict[str, Any] = {"thread_id": thread, "checkpoint_ns": ns}
    if checkpoint_id:
        conf["checkpoint_id"] = checkpoint_id
    return {"configurable": conf}


def _step(saver: AgentstateSaver, parent: Checkpoint | None, step: int, values: dict[str, Any]) -> Checkpoint:
    """The next checkpoint after `parent`, with `values` as new channel values."""
    base = parent or empty_checkpoint()
    cp = create_checkpoint(base, None, step)
    versions = {ch: saver.get_next_version(base["channel_versions"].get(ch), None) for ch in values}
    cp["channel_values"] = {**base.get("channel_values", {}), **values}
    cp["channel_versions"] = {**base["channel_versions"], **versions}
    cp["new_versions"] = versions  # type: ignore[typeddict-unknown-key]
    return cp


def _put(saver: AgentstateSaver, thread: str, parent: Checkpoint | None, cp: Checkpoint, meta: dict | None = None):
    new_versions = cp.pop("new_versions")  # type: ignore[typeddict-item]
    return saver.put(_config(thread, parent["id"] if parent else None), cp, meta or {}, new_versions)


def test_sync_round_trip_values_writes_list(saver: AgentstateSaver) -> None:
    t = f"t-{secrets.token_hex(4)}"
    c1 = _step(saver, None, -1, {"messages": ["hi"], "count": 1})
    _put(saver, t, None, c1, {"source": "input", "step": -1, "run_id": "r1"})
    c2 = _step(saver, c1, 0, {"count": 2})
    cfg2 = _put(saver, t, c1, c2, {"source": "loop", "step": 0, "run_id": "r1"})
    saver.put_writes(cfg2, [("count", 3), ("messages", ["hi", "there"])], task_id="task-1", task_path="~a")

    got = saver.get_tuple(_config(t))
    assert got is not None and got.checkpoint["id"] == c2["id"]
    assert got.checkpoint["channel_values"] == {"messages": ["hi"], "count": 2}
    assert got.parent_config == _config(t, c1["id"])
    assert got.pending_writes == [("task-1", "count", 3), ("task-1", "messages", ["hi", "there"])]
    assert got.metadata == {"source": "loop", "step": 0, "run_id": "r1"}
    first = saver.get_tuple(_config(t, c1["id"]))
    assert first is not None and first.checkpoint["channel_values"] == {"messages": ["hi"], "count": 1}

    assert [c.checkpoint["id"] for c in saver.list(_config(t))] == [c2["id"], c1["id"]]
    assert [c.checkpoint["id"] for c in saver.list(_config(t), filter={"source": "input"})] == [c1["id"]]
    assert [c.checkpoint["id"] for c in saver.list(_config(t), before=_config(t, c2["id"]))] == [c1["id"]]
    assert [c.checkpoint["id"] for c in saver.list(_config(t), limit=1)] == [c2["id"]]
    assert [c.checkpoint["id"] for c in saver.list(None, filter={"run_id": "r1"})] == [c2["id"], c1["id"]]


def test_large_channel_value_round_trips(saver: AgentstateSaver) -> None:
    """3 MiB: above the server's 1 MiB value limit, stored in chunks, transparently."""
    t = f"t-{secrets.token_hex(4)}"
    big = secrets.token_bytes(3 * 1024 * 1024)
    cp = _step(saver, None, -1, {"blob": big})
    _put(saver, t, None, cp)
    got = saver.get_tuple(_config(t))
    assert got is not None and got.checkpoint["channel_values"]["blob"] == big


def test_two_workers_strict_no_silent_fork(client: Client, namespace: str) -> None:
    """Two workers on one thread, each putting the next step from the head it
    read: at every step exactly one wins, the other gets CheckpointConflict
    naming the winner as the head, and the chain never forks."""
    t = f"t-{secrets.token_hex(4)}"
    workers = [AgentstateSaver(client, namespace), AgentstateSaver(client, namespace)]
    root = _step(workers[0], None, -1, {"count": 0})
    _put(workers[0], t, None, root)
    for step in range(10):
        head = workers[0].get_tuple(_config(t))
        assert head is not None
        outcomes: list[Any] = [None, None]
        candidates = [_step(w, head.checkpoint, step, {"count": step + 1, "by": i}) for i, w in enumerate(workers)]
        barrier = threading.Barrier(2)

        def run(i: int) -> None:
            barrier.wait()
            try:
                outcomes[i] = _put(workers[i], t, head.checkpoint, candidates[i])
            except CheckpointConflict as e:
                outcomes[i] = e

        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        won = [o for o in outcomes if isinstance(o, dict)]
        lost = [o for o in outcomes if isinstance(o, CheckpointConflict)]
        assert len(won) == 1 and len(lost) == 1, outcomes
        assert lost[0].head == won[0]["configurable"]["checkpoint_id"]
        assert lost[0].parent == head.checkpoint["id"]
    chain = list(workers[0].list(_config(t)))
    assert len(chain) == 11
    for newer, older in zip(chain, chain[1:]):
        assert newer.parent_config is not None
        assert newer.parent_config["configurable"]["checkpoint_id"] == older.checkpoint["id"]


def test_forks_allowed_when_not_strict(client: Client, namespace: str) -> None:
    saver = AgentstateSaver(client, namespace, strict=False)
    t = f"t-{secrets.token_hex(4)}"
    root = _step(saver, None, -1, {"count": 0})
    _put(saver, t, None, root)
    a = _step(saver, root, 0, {"count": 1})
    _put(saver, t, root, a)
    b = _step(saver, root, 0, {"count": 2})
    _put(saver, t, root, b)  # a fork from root: allowed, on purpose
    assert len(list(saver.list(_config(t)))) == 3


def test_prune_keep_latest_and_delete(saver: AgentstateSaver) -> None:
    t = f"t-{secrets.token_hex(4)}"
    prev = None
    for step in range(5):
        cp = _step(saver, prev, step - 1, {"count": step})
        _put(saver, t, prev, cp)
        prev = cp
    sub = _step(saver, None, -1, {"x": 1})
    new_versions = sub.pop("new_versions")  # type: ignore[typeddict-item]
    saver.put(_config(t, ns="sub:1"), sub, {}, new_versions)
    saver.prune([t], strategy="keep_latest")
    kept = list(saver.list({"configurable": {"thread_id": t}}))
    assert sorted(c.checkpoint["id"] for c in kept) == sorted([prev["id"], sub["id"]])
    latest = saver.get_tuple(_config(t))
    assert latest is not None and latest.checkpoint["channel_values"] == {"count": 4}
    saver.prune([t], strategy="delete")
    assert list(saver.list({"configurable": {"thread_id": t}})) == []
    with pytest.raises(ValueError):
        saver.prune([t], strategy="keep_some")


def test_large_pending_write_round_trips(saver: AgentstateSaver) -> None:
    """A 3 MiB pending write: above the server's 1 MiB value limit, stored in chunks, read back whole."""
    t = f"t-{secrets.token_hex(4)}"
    cp = _step(saver, None, -1, {"count": 1})
    cfg = _put(saver, t, None, cp)
    big = secrets.token_bytes(3 * 1024 * 1024)
    saver.put_writes(cfg, [("blob", big), ("count", 2)], task_id="task-1")
    got = saver.get_tuple(_config(t))
    assert got is not None and got.pending_writes == [("task-1", "blob", big), ("task-1", "count", 2)]
    listed = list(saver.list(_config(t)))
    assert listed[0].pending_writes == got.pending_writes


async def test_large_pending_write_round_trips_async(saver: AgentstateSaver) -> None:
    t = f"t-{secrets.token_hex(4)}"
    cp = _step(saver, None, -1, {"count": 1})
    new_versions = cp.pop("new_versions")  # type: ignore[typeddict-item]
    cfg = await saver.aput(_config(t), cp, {}, new_versions)
    big = "x" * (2 * 1024 * 1024 + 17)
    await saver.aput_writes(cfg, [("text", big)], task_id="task-1")
    got = await saver.aget_tuple(_config(t))
    assert got is not None and got.pending_writes == [("task-1", "text", big)]


def test_large_metadata_round_trips(saver: AgentstateSaver) -> None:
    """Metadata above the server's 1 MiB value limit (one jsonb on the server), filterable."""
    t = f"t-{secrets.token_hex(4)}"
    note = "m" * 1_500_000
    cp = _step(saver, None, -1, {"count": 1})
    _put(saver, t, None, cp, {"source": "input", "note": note})
    got = saver.get_tuple(_config(t))
    assert got is not None and got.metadata["note"] == note
    assert [c.checkpoint["id"] for c in saver.list(_config(t), filter={"source": "input"})] == [cp["id"]]


def test_put_writes_past_the_checkpoint_limit_is_refused(saver: AgentstateSaver) -> None:
    """A checkpoint is read whole (values and pending writes) in one reply: a
    put_writes that would take it past the server's limit (4 MiB by default)
    raises CheckpointInputError (RESOURCE_EXHAUSTED on the wire), nothing written."""
    t = f"t-{secrets.token_hex(4)}"
    cfg = _put(saver, t, None, _step(saver, None, -1, {"count": 1}))
    mib = 1024 * 1024
    saver.put_writes(cfg, [("a", b"a" * (3 * mib // 2))], task_id="task-a")
    saver.put_writes(cfg, [("b", b"b" * (3 * mib // 2))], task_id="task-b")
    with pytest.raises(CheckpointInputError) as e:
        saver.put_writes(cfg, [("c", b"c" * (3 * mib // 2))], task_id="task-c")
    assert e.value.field == "writes" and "AGENTSTATE_MAX_APPEND_BYTES" in str(e.value)
    assert isinstance(e.value.__cause__, grpc.RpcError)
    assert e.value.__cause__.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    got = saver.get_tuple(_config(t))
    assert got is not None and [w[0] for w in got.pending_writes] == ["task-a", "task-b"]


def test_bad_input_raises_checkpoint_input_error_and_writes_nothing(saver: AgentstateSaver) -> None:
    cp = _step(saver, None, -1, {"count": 1})
    new_versions = cp.pop("new_versions")  # type: ignore[typeddict-item]
    checked_by_the_saver: list[tuple[Any, str]] = [
        (lambda: saver.put({"configurable": {}}, cp, {}, new_versions), "thread_id"),
        (lambda: saver.put({}, cp, {}, new_versions), "configurable"),
        (lambda: saver.put(_config(""), cp, {}, new_versions), "thread_id"),
        (lambda: saver.put({"configurable": {"thread_id": {"a": 1}}}, cp, {}, new_versions), "thread_id"),
        (lambda: saver.put({"configurable": {"thread_id": "t", "checkpoint_ns": ["x"]}}, cp, {}, new_versions), "checkpoint_ns"),
        (lambda: saver.put(_config("t"), {**cp, "id": 7}, {}, new_versions), "checkpoint_id"),  # type: ignore[typeddict-item]
        (lambda: saver.put(_config("t"), cp, {"when": object()}, new_versions), "metadata_json"),
        (lambda: saver.put(_config("t"), cp, ["not", "a", "dict"], new_versions), "metadata_json"),  # type: ignore[arg-type]
        (lambda: saver.put_writes(_config("t"), [("ch", 1)], "task"), "checkpoint_id"),
        (lambda: saver.put_writes(_config("t", "c1"), [("ch", 1, 2)], "task"), "writes"),  # type: ignore[list-item]
        (lambda: saver.put_writes(_config("t", "c1"), [(3, 1)], "task"), "writes"),  # type: ignore[list-item]
        (lambda: saver.put_writes(_config("t", "c1"), [("ch", 1)], None), "task_id"),  # type: ignore[arg-type]
        (lambda: saver.get_tuple({"configurable": {"checkpoint_ns": ""}}), "thread_id"),
    ]
    for call, field in checked_by_the_saver:
        with pytest.raises(CheckpointInputError) as e:
            call()
        assert e.value.field == field, (field, str(e.value))
    # As LangGraph's savers, a config without thread_id is a KeyError too.
    with pytest.raises(KeyError):
        saver.put({"configurable": {}}, cp, {}, new_versions)
    # Refused by the server: INVALID_ARGUMENT on the wire, naming the field.
    refused_by_the_server = [
        (lambda: saver.put(_config("t\x00"), cp, {}, new_versions), "thread_id"),
        (lambda: saver.put(_config("x" * 2000), cp, {}, new_versions), "thread_id"),
        (lambda: saver.put_writes(_config("t", "c1"), [("", 1)], "task"), "writes[0].channel"),
        (lambda: saver.get_tuple(_config("t", "c" * 2000)), "checkpoint_id"),
    ]
    for call, field in refused_by_the_server:
        with pytest.raises(CheckpointInputError) as e:
            call()
        assert e.value.field == field, (field, str(e.value))
        assert isinstance(e.value.__cause__, grpc.RpcError)
        assert e.value.__cause__.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in (e.value.__cause__.details() or "")
    assert list(saver.list(None)) == []
