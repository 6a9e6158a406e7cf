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

**Bad input** raises :class:`CheckpointInputError` (a ``KeyError`` and a
``ValueError``; ``.field`` names what is wrong) and writes nothing: a config
without ``configurable.thread_id`` (or, for ``put_writes``, ``checkpoint_id``),
a thread id, checkpoint ns or id of the wrong type, writes that are not
``(channel, value)`` pairs, and whatever the server refuses as
``INVALID_ARGUMENT`` (a field over its limit, metadata that is not a JSON
object) or ``RESOURCE_EXHAUSTED`` (a request over the message limit, a
``put_writes`` that would take its checkpoint past the size one read returns);
the gRPC error is its ``__cause__``.

Sync methods call the server directly; the async ones run the same calls in a
worker thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
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

__all__ = ["AgentstateSaver", "CheckpointConflict", "CheckpointInputError", "MAX_PAGE"]

#: The server's default page and list limit (AGENTSTATE_LIST_MAX_LIMIT).
MAX_PAGE = 1000

_HEAD_TRAILER = "agentstate-checkpoint-head"
_FIELD_TRAILER = "agentstate-field"


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


class CheckpointInputError(KeyError, ValueError):
    """Bad input, refused before anything was written. ``field`` names it:
    ``configurable``, ``thread_id``, ``checkpoint_ns``, ``checkpoint_id``,
    ``writes``, ``task_id`` (checked by the saver), or the request field the
    server named (``INVALID_ARGUMENT``, e.g. ``metadata_json``), or ``writes``
    / ``request`` for ``RESOURCE_EXHAUSTED`` (over the message limit, or a
    ``put_writes`` that would take its checkpoint past the size one read
    returns). The server's error, when there was one, is ``__cause__``.

    A ``KeyError`` (as LangGraph's savers raise for a config without
    ``thread_id``) and a ``ValueError``."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message

    def __str__(self) -> str:
        return self.message


def _name(field: str, value: Any, *, required: bool) -> str:
    """A thread id, checkpoint ns or checkpoint id from a config: a string (an
    int or UUID is taken as its text); anything else is CheckpointInputError."""
    if value is None or value == "":
        if required:
            raise CheckpointInputError(field, f'missing "configurable.{field}" in the config')
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int, uuid.UUID)):
        raise CheckpointInputError(
            field, f'"configurable.{field}" must be a string, not {type(value).__name__}'
        )
    return str(value)


def _address(config: Any, *, need_checkpoint_id: bool = False) -> tuple[str, str, str]:
    """(thread_id, checkpoint_ns, checkpoint_id) of a config, checked."""
    conf = config.get("configurable") if isinstance(config, dict) else None
    if not isinstance(conf, dict):
        raise CheckpointInputError("configurable", 'missing "configurable" in the config')
    return (
        _name("thread_id", conf.get("thread_id"), required=True),
        _name("checkpoint_ns", conf.get("checkpoint_ns"), required=False),
        _name("checkpoint_id", conf.get("checkpoint_id"), required=need_checkpoint_id),
    )


@contextmanager
def _refusals(field: str = "request") -> Iterator[None]:
    """Turns the server's INVALID_ARGUMENT and RESOURCE_EXHAUSTED into CheckpointInputError."""
    try:
        yield
    except grpc.RpcError as e:
        code = e.code()
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            named = dict(e.trailing_metadata() or ()).get(_FIELD_TRAILER)
            raise CheckpointInputError(str(named or field), e.details() or str(code)) from e
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
            raise CheckpointInputError(field, e.details() or str(code)) from e
        raise


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

    @staticmethod
    def _metadata_json(config: RunnableConfig, metadata: CheckpointMetadata) -> bytes:
        if not isinstance(metadata, dict):
            raise CheckpointInputError("metadata_json", f"metadata must be a dict, not {type(metadata).__name__}")
        try:
            return json.dumps(get_serializable_checkpoint_metadata(config, metadata), ensure_ascii=False).encode()
        except (TypeError, ValueError) as e:
            raise CheckpointInputError("metadata_json", f"metadata must be JSON: {e}") from e

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
        thread_id, checkpoint_ns, checkpoint_id = _address(config)
        with _refusals():
            res = self.client.checkpoints.GetCheckpoint(
                checkpoint_pb2.GetCheckpointRequest(
                    namespace=self.namespace,
                    thread_id=thread_id,
                    checkpoint_ns=checkpoint_ns,
                    checkpoint_id=checkpoint_id,
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
            with _refusals():
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
        thread_id, checkpoint_ns, parent = _address(config)
        conf = config["configurable"]
        if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("id"), str):
            raise CheckpointInputError("checkpoint_id", 'the checkpoint must be a dict with a string "id"')
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
            metadata_json=self._metadata_json(config, metadata),
            channel_versions=versions,
            values=blobs,
            # A deliberate fork (time travel) may opt out per call, as in the TypeScript saver.
            require_parent_is_head=self.strict and not conf.get("agentstate_fork"),
        )
        try:
            with _refusals():
                self.client.checkpoints.PutCheckpoint(req, timeout=self.timeout)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.ABORTED:
                head = dict(e.trailing_metadata() or ()).get(_HEAD_TRAILER)
                if head is not None:
                    raise CheckpointConflict(thread_id, checkpoint_ns, parent or None, str(head)) from e
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
        thread_id, checkpoint_ns, checkpoint_id = _address(config, need_checkpoint_id=True)
        if not isinstance(task_id, str) or not isinstance(task_path, str):
            raise CheckpointInputError("task_id", "task_id and task_path must be strings")
        pairs = list(writes)
        for w in pairs:
            if not isinstance(w, (tuple, list)) or len(w) != 2 or not isinstance(w[0], str):
                raise CheckpointInputError("writes", "writes must be (channel, value) pairs with a string channel")
        if not pairs:
            return
        with _refusals("writes"):
            self.client.checkpoints.PutWrites(
                checkpoint_pb2.PutWritesRequest(
                    namespace=self.namespace,
                    thread_id=thread_id,
                    checkpoint_ns=checkpoint_ns,
                    checkpoint_id=checkpoint_id,
                    task_id=task_id,
                    task_path=task_path,
                    writes=[
                        checkpoint_pb2.WriteValue(
                            index=WRITES_IDX_MAP.get(channel, idx), channel=channel, value=self._typed(value)
                        )
                        for idx, (channel, value) in enumerate(pairs)
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
