"""LangGraph's BaseStore on agentstate: :class:`AgentstateStore`.

Items live in one agentstate namespace (the tenant), under LangGraph's
namespace tuple, which the server calls a *path* (``agentstate.v1.StoreService``,
see ``proto/agentstate/v1/store.proto``). Every operation is one RPC:
get, put (a ``None`` value deletes), search with filter, limit and offset,
and list_namespaces with prefix, suffix and max_depth conditions.

TTL (``supports_ttl``), as LangGraph's TTLConfig says: ``default_ttl`` (minutes)
applies to puts without an explicit ``ttl``; ``refresh_on_read`` (default
True) restarts an item's TTL when get or search returns it. The server hides
expired items at once and deletes them in its background sweep, so
``sweep_interval_minutes`` is not needed (it is accepted and ignored).

Semantic search is not supported: a search ``query`` is ignored (results have
``score=None``), as in LangGraph's InMemoryStore without an index, and the
``index`` argument of put is ignored.

The async methods (``abatch`` and the ``a*`` methods built on it) run the
blocking gRPC calls in a worker thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import Any, Optional

from google.protobuf import duration_pb2

from agentstate import Client
from agentstate.v1 import store_pb2
from langgraph.store.base import (
    BaseStore,
    GetOp,
    InvalidNamespaceError,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
    validate_op_namespace,
)

__all__ = ["AgentstateStore", "MAX_PAGE"]

#: The server's default page limit (AGENTSTATE_LIST_MAX_LIMIT): larger limits are read in pages.
MAX_PAGE = 1000


def _utc(ts: Any) -> datetime:
    return ts.ToDatetime(tzinfo=timezone.utc)


def _ttl(minutes: Optional[float]) -> Optional[duration_pb2.Duration]:
    if minutes is None:
        return None
    if not (isinstance(minutes, (int, float)) and math.isfinite(minutes) and minutes > 0):
        raise ValueError(f"ttl must be a positive number of minutes, got {minutes!r}")
    d = duration_pb2.Duration()
    d.FromMilliseconds(max(1, round(minutes * 60_000)))
    return d


def _merge_patterns(paths: Sequence[Sequence[str]], *, from_end: bool) -> Optional[list[str]]:
    """One pattern equivalent to all of `paths` (each must match), or None when none can."""
    length = max((len(p) for p in paths), default=0)
    merged = ["*"] * length
    for p in paths:
        # Align prefixes on the first label, suffixes on the last.
        offset = length - len(p) if from_end else 0
        for i, label in enumerate(p):
            j = offset + i
            if label == "*":
                continue
            if merged[j] not in ("*", label):
                return None
            merged[j] = label
    return merged


class AgentstateStore(BaseStore):
    """A LangGraph BaseStore whose items live in an agentstate server.

    Args:
        client: an :class:`agentstate.Client` (address, TLS, interceptors for
            auth); the store does not close it unless made by :meth:`from_address`.
        namespace: the agentstate namespace (tenant) holding the items,
            ``[a-z0-9][a-z0-9._-]{0,62}``.
        ttl: LangGraph's TTLConfig (``default_ttl`` in minutes, ``refresh_on_read``).
        timeout: deadline of each RPC in seconds (default: the client's).
    """

    supports_ttl = True

    def __init__(
        self,
        client: Client,
        namespace: str,
        *,
        ttl: Optional[TTLConfig] = None,
        timeout: Optional[float] = None,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.ttl_config = ttl
        self.timeout = client.timeout if timeout is None else timeout
        self._owns_client = False

    @classmethod
    def from_address(cls, address: str, namespace: str, *, ttl: Optional[TTLConfig] = None, **client_options: Any) -> "AgentstateStore":
        """A store with its own client (``client_options`` go to :class:`agentstate.Client`); close() closes it."""
        store = cls(Client(address, **client_options), namespace, ttl=ttl)
        store._owns_client = True
        return store

    def close(self) -> None:
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> "AgentstateStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # BaseStore ----------------------------------------------------------

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Runs the operations in order, one RPC each (a search or listing of
        more than MAX_PAGE results takes several)."""
        ops = list(ops)
        for op in ops:
            validate_op_namespace(op)
        return [self._run(op) for op in ops]

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        return await asyncio.to_thread(self.batch, list(ops))

    # One operation --------------------------------------------------------

    def _run(self, op: Op) -> Result:
        if isinstance(op, GetOp):
            return self._get(op)
        if isinstance(op, PutOp):
            return self._put(op)
        if isinstance(op, SearchOp):
            return self._search(op)
        if isinstance(op, ListNamespacesOp):
            return self._list_namespaces(op)
        raise ValueError(f"Unknown operation type: {type(op)}")

    def _item(self, pb: store_pb2.StoreItem, cls: type = Item) -> Any:
        kwargs = dict(
            value=json.loads(pb.value_json),
            key=pb.key,
            namespace=tuple(pb.path),
            created_at=_utc(pb.create_time),
            updated_at=_utc(pb.update_time),
        )
        return cls(**kwargs)

    def _get(self, op: GetOp) -> Optional[Item]:
        res = self.client.store.GetItem(
            store_pb2.GetItemRequest(
                namespace=self.namespace, path=op.namespace, key=op.key, refresh_ttl=op.refresh_ttl
            ),
            timeout=self.timeout,
        )
        return self._item(res.item) if res.found else None

    def _put(self, op: PutOp) -> None:
        if not op.namespace:
            raise InvalidNamespaceError("Namespace cannot be empty.")
        if op.value is None:
            self.client.store.DeleteItem(
                store_pb2.DeleteItemRequest(namespace=self.namespace, path=op.namespace, key=op.key),
                timeout=self.timeout,
            )
            return None
        value_json = json.dumps(dict(op.value), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        req = store_pb2.PutItemRequest(namespace=self.namespace, path=op.namespace, key=op.key, value_json=value_json)
        ttl = _ttl(op.ttl)
        if ttl is not None:
            req.ttl.CopyFrom(ttl)
        self.client.store.PutItem(req, timeout=self.timeout)
        return None

    def _search(self, op: SearchOp) -> list[SearchItem]:
        if op.limit < 0 or op.offset < 0:
            raise ValueError("search limit and offset must be >= 0")
        filter_json = json.dumps(op.filter, ensure_ascii=False, allow_nan=False) if op.filter else ""
        out: list[SearchItem] = []
        offset = op.offset
        while len(out) < op.limit:
            page = min(op.limit - len(out), MAX_PAGE)
            res = self.client.store.SearchItems(
                store_pb2.SearchItemsRequest(
                    namespace=self.namespace,
                    path_prefix=op.namespace_prefix,
                    filter_json=filter_json,
                    limit=page,
                    offset=offset,
                    refresh_ttl=op.refresh_ttl,
                ),
                timeout=self.timeout,
            )
            out.extend(self._item(i, SearchItem) for i in res.items)
            offset += len(res.items)
            if not res.truncated and len(res.items) < page:
                break
        return out

    def _list_namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        conditions: Sequence[MatchCondition] = op.match_conditions or ()
        for c in conditions:
            if c.match_type not in ("prefix", "suffix"):
                raise ValueError(f"Unsupported match type: {c.match_type}")
        prefix = _merge_patterns([c.path for c in conditions if c.match_type == "prefix"], from_end=False)
        suffix = _merge_patterns([c.path for c in conditions if c.match_type == "suffix"], from_end=True)
        if prefix is None or suffix is None or op.limit <= 0:
            return []
        out: list[tuple[str, ...]] = []
        offset = op.offset
        while len(out) < op.limit:
            page = min(op.limit - len(out), MAX_PAGE)
            res = self.client.store.ListPaths(
                store_pb2.ListPathsRequest(
                    namespace=self.namespace,
                    prefix=prefix,
                    suffix=suffix,
                    max_depth=op.max_depth or 0,
                    limit=page,
                    offset=offset,
                ),
                timeout=self.timeout,
            )
            out.extend(tuple(p.labels) for p in res.paths)
            offset += len(res.paths)
            if len(res.paths) < page:
                break
        return out

