"""LangGraph's checkpointer on agentstate: :class:`AgentstateSaver`.

Checkpoints live in one agentstate namespace (the tenant), behind
``agentstate.v1.CheckpointService`` (``proto/agentstate/v1/checkpoint.proto``).
The server stores each channel value once per (thread, checkpoint ns, channel,
version), shared by every checkpoint that references it, and serves the
metadata filter of ``list`` from an index.

**No silent forks** (strict mode, on by default): a put is accepted only when
its parent (the ``checkpoint_id`` of the config it is given) is still the
latest checkpoint of its thread and checkpoint ns. A second worker that
writes on the same thread from a stale head gets :class:`CheckpointConflict`
(with the current head) instead of forking the chain. A deliberate fork (resuming
from an earlier checkpoint of the same thread: time travel) passes
``configurable.agentstate_fork: True``, or uses a saver with ``strict=False``.

Optional capabilities: ``delete_for_runs``, ``copy_thread``, ``prune``
(``"keep_latest"`` keeps the latest checkpoint of each checkpoint ns,
``"delete"`` removes them all).

Sync methods call the server directly; the async ones run the same calls in a
worker thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, Optional

import grpc

from agentstate import Client
from agentstate.v1 import checkpoint_pb2
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_serializable_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

__all__ = ["AgentstateSaver", "CheckpointConflict", "MAX_PAGE"]

#: The server's default page and list limit (AGENTSTATE_LIST_MAX_LIMIT).
MAX_PAGE = 1000

_HEAD_TRAILER = "agentstate-checkpoint-head"


class CheckpointConflict(Exception):
    """A strict put was refused: its parent is no longer the thread's latest
    checkpoint (another worker moved it). Nothing was written. ``head`` is the
    current latest checkpoint id; re-read it (``get_tuple``) and re-run the step
    from there, or construct the saver with ``strict=False`` to fork on purpose."""

    def __init__(self, thread_id: str, checkpoint_ns: str, parent: Optional[str], head: str) -> None:
        super().__init__(
            f"checkpoint conflict on thread {thread_id!r} (ns {checkpoint_ns!r}): "
            f"the put's parent is {parent!r} but the latest checkpoint is {head!r}"
        )
        self.thread_id = thread_id
        self.checkpoint_ns = checkpoint_ns
        self.parent = parent
        self.head = head


def _chunks(items: Sequence[str], size: int = MAX_PAGE) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class AgentstateSaver(BaseCheckpointSaver[str]):
    """A LangGraph checkpointer whose checkpoints live in an agentstate server.

    Args:
        client: an :class:`agentstate.Client` (address, TLS, interceptors for
            auth); the saver does not close it unless made by :meth:`from_address`.
        namespace: the agentstate namespace (tenant), ``[a-z0-9][a-z0-9._-]{0,62}``.
        strict: refuse a put whose parent is not the latest checkpoint
            (:class:`CheckpointConflict`); default True.
        serde: LangGraph serializer (default: JsonPlusSerializer).
        timeout: deadline of each RPC in seconds (default: the client's).
    """

    def __init__(
        self,
        client: Client,
        namespace: str,
        *,
        strict: bool = True,
        serde: Optional[SerializerProtocol] = None,
        timeout: Optional[float] = None,
    ) -> None:
        super().__init__(serde=serde)
        self.client = client
        self.namespace = namespace
        self.strict = strict
        self.timeout = client.timeout if timeout is None else timeout
        self._owns_client = False

    @classmethod
    def from_address(
        cls, address: str, namespace: str, *, strict: bool = True, **client_options: Any
    ) -> "AgentstateSaver":
        """A saver with its own client (``client_options`` go to :class:`agentstate.Client`); close() closes it."""
        saver = cls(Client(address, **client_options), namespace, strict=strict)
        saver._owns_client = True
        return saver

    def close(self) -> None:
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> "AgentstateSaver":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Conversions --------------------------------------------------------

    def _typed(self, value: Any) -> checkpoint_pb2.TypedValue:
        type_, data = self.serde.dumps_typed(value)
        return checkpoint_pb2.TypedValue(type=type_, data=data)

    def _untyped(self, tv: checkpoint_pb2.TypedValue) -> Any:
        return self.serde.loads_typed((tv.type, tv.data))

    def _tuple(self, c: checkpoint_pb2.Checkpoint) -> CheckpointTuple:
        checkpoint: Checkpoint = self._untyped(c.document)
        # The values of exactly the versions the document references.
        wanted = {ch: str(v) for ch, v in checkpoint.get("channel_versions", {}).items()}
        channel_values = {
            v.channel: self._untyped(v.value)
            for v in c.values
            if wanted.get(v.channel) == v.version and v.value.type != "empty"
        }
        config: RunnableConfig = {
            "configurable": {
                "thread_id": c.thread_id,
                "checkpoint_ns": c.checkpoint_ns,
                "checkpoint_id": c.checkpoint_id,
            }
        }
        parent: Optional[RunnableConfig] = (
            {
                "configurable": {
                    "thread_id": c.thread_id,
                    "checkpoint_ns": c.checkpoint_ns,
                    "checkpoint_id": c.parent_checkpoint_id,
                }
            }
            if c.parent_checkpoint_id
            else None
        )
        return CheckpointTuple(
            config=config,
            checkpoint={**checkpoint, "channel_values": channel_values},
            metadata=json.loads(c.metadata_json) if c.metadata_json else {},
            parent_config=parent,
            pending_writes=[(w.task_id, w.channel, self._untyped(w.value)) for w in c.pending_writes],
        )

    # BaseCheckpointSaver ------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> Optional[CheckpointTuple]:
        conf = config["configurable"]
        res = self.client.checkpoints.GetCheckpoint(
            checkpoint_pb2.GetCheckpointRequest(
                namespace=self.namespace,
                thread_id=conf["thread_id"],
                checkpoint_ns=conf.get("checkpoint_ns", ""),
                checkpoint_id=conf.get("checkpoint_id") or "",
            ),
            timeout=self.timeout,
        )
        return self._tuple(res.checkpoint) if res.found else None

    def list(
        self,
        config: Optional[RunnableConfig],
        *,
        filter: Optional[dict[str, Any]] = None,
        before: Optional[RunnableConfig] = None,
        limit: Optional[int] = None,
    ) -> Iterator[CheckpointTuple]:
        conf = (config or {}).get("configurable", {})
        req = checkpoint_pb2.ListCheckpointsRequest(
            namespace=self.namespace,
            thread_id=conf.get("thread_id") or "",
            checkpoint_id=conf.get("checkpoint_id") or "",
            before_checkpoint_id=((before or {}).get("configurable", {}).get("checkpoint_id") or ""),
            metadata_filter_json=json.dumps(filter).encode() if filter else b"",
        )
        if "checkpoint_ns" in conf and conf["checkpoint_ns"] is not None:
            req.checkpoint_ns = conf["checkpoint_ns"]
        if limit is not None and limit <= 0:
            return
        yielded = 0
        while True:
            req.limit = MAX_PAGE if limit is None else min(MAX_PAGE, limit - yielded)
            res = self.client.checkpoints.ListCheckpoints(req, timeout=self.timeout)
            for c in res.checkpoints:
                tup = self._tuple(c)
                # The server matches by JSON containment; LangGraph's filter is
                # equality of each top-level key (a list or an object must be equal, not contain).
                if filter and any(tup.metadata.get(k) != v for k, v in filter.items()):
                    continue
                yield tup
                yielded += 1
                if limit is not None and yielded >= limit:
                    return
            if not res.next_page_token:
                return
            req.page_token = res.next_page_token

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        conf = config["configurable"]
        thread_id = conf["thread_id"]
        checkpoint_ns = conf.get("checkpoint_ns", "")
        parent = conf.get("checkpoint_id")
        doc = checkpoint.copy()
        values = doc.pop("channel_values", {})  # type: ignore[misc]
        versions = {ch: str(v) for ch, v in checkpoint["channel_versions"].items()}
        blobs = []
        for ch, v in new_versions.items():
            # Every value sent must be referenced by the checkpoint's versions.
            versions.setdefault(ch, str(v))
            value = self._typed(values[ch]) if ch in values else checkpoint_pb2.TypedValue(type="empty")
            blobs.append(checkpoint_pb2.ChannelValue(channel=ch, version=str(v), value=value))
        req = checkpoint_pb2.PutCheckpointRequest(
            namespace=self.namespace,
            thread_id=thread_id,
            checkpoint_ns=checkpoint_ns,
            checkpoint_id=checkpoint["id"],
            parent_checkpoint_id=parent or "",
            document=self._typed(doc),
            metadata_json=json.dumps(
                get_serializable_checkpoint_metadata(config, metadata), ensure_ascii=False
            ).encode(),
            channel_versions=versions,
            values=blobs,
            # A deliberate fork (time travel) may opt out per call, as in the TypeScript saver.
            require_parent_is_head=self.strict and not conf.get("agentstate_fork"),
        )
        try:
            self.client.checkpoints.PutCheckpoint(req, timeout=self.timeout)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.ABORTED:
                head = dict(e.trailing_metadata() or ()).get(_HEAD_TRAILER)
                if head is not None:
                    raise CheckpointConflict(thread_id, checkpoint_ns, parent, str(head)) from e
            raise
        return {
            "configurable": {
                "thread_id": thread_id,
                "checkpoint_ns": checkpoint_ns,
                "checkpoint_id": checkpoint["id"],
            }
        }

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        if not writes:
            return
        conf = config["configurable"]
        self.client.checkpoints.PutWrites(
            checkpoint_pb2.PutWritesRequest(
                namespace=self.namespace,
                thread_id=conf["thread_id"],
                checkpoint_ns=conf.get("checkpoint_ns", ""),
                checkpoint_id=conf["checkpoint_id"],
                task_id=task_id,
                task_path=task_path,
                writes=[
                    checkpoint_pb2.WriteValue(
                        index=WRITES_IDX_MAP.get(channel, idx), channel=channel, value=self._typed(value)
                    )
                    for idx, (channel, value) in enumerate(writes)
                ],
            ),
            timeout=self.timeout,
        )

    def delete_thread(self, thread_id: str) -> None:
        self.client.checkpoints.DeleteThread(
            checkpoint_pb2.DeleteThreadRequest(namespace=self.namespace, thread_id=str(thread_id)),
            timeout=self.timeout,
        )

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        for chunk in _chunks([str(r) for r in run_ids]):
            self.client.checkpoints.DeleteForRuns(
                checkpoint_pb2.DeleteForRunsRequest(namespace=self.namespace, run_ids=chunk),
                timeout=self.timeout,
            )

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        self.client.checkpoints.CopyThread(
            checkpoint_pb2.CopyThreadRequest(
                namespace=self.namespace,
                source_thread_id=str(source_thread_id),
                target_thread_id=str(target_thread_id),
            ),
            timeout=self.timeout,
        )

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        keep = {"keep_latest": 1, "delete": 0}.get(strategy)
        if keep is None:
            raise ValueError(f"Unknown prune strategy {strategy!r}: use 'keep_latest' or 'delete'")
        for chunk in _chunks([str(t) for t in thread_ids]):
            self.client.checkpoints.PruneCheckpoints(
                checkpoint_pb2.PruneCheckpointsRequest(namespace=self.namespace, thread_ids=chunk, keep_latest=keep),
                timeout=self.timeout,
            )

    def get_next_version(self, current: Optional[str], channel: None = None) -> str:
        """Versions that sort as text: a zero-padded counter, then a random tiebreak."""
        if current is None:
            n = 0
        elif isinstance(current, int):
            n = current
        else:
            n = int(str(current).split(".")[0])
        return f"{n + 1:032}.{random.random():016}"

    # Async: the same calls in a worker thread ------------------------------------

    async def aget_tuple(self, config: RunnableConfig) -> Optional[CheckpointTuple]:
        return await asyncio.to_thread(self.get_tuple, config)

    async def alist(
        self,
        config: Optional[RunnableConfig],
        *,
        filter: Optional[dict[str, Any]] = None,
        before: Optional[RunnableConfig] = None,
        limit: Optional[int] = None,
    ) -> AsyncIterator[CheckpointTuple]:
        it = self.list(config, filter=filter, before=before, limit=limit)
        done = object()
        while True:
            tup = await asyncio.to_thread(next, it, done)
            if tup is done:
                return
            yield tup  # type: ignore[misc]

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await asyncio.to_thread(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        await asyncio.to_thread(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        await asyncio.to_thread(self.delete_thread, thread_id)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await asyncio.to_thread(self.delete_for_runs, run_ids)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await asyncio.to_thread(self.copy_thread, source_thread_id, target_thread_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        await asyncio.to_thread(self.prune, thread_ids, strategy=strategy)
