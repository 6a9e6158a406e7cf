"""AgentstateStore against a live server: LangGraph's BaseStore contract
(get, put, delete, search with filter/limit/offset, list_namespaces with
prefix/suffix/max_depth), batches, async, TTL, and errors."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

import grpc
import pytest

from agentstate import Client
from langgraph.store.agentstate import AgentstateStore
from langgraph.store.base import (
    GetOp,
    InvalidNamespaceError,
    Item,
    ListNamespacesOp,
    MatchCondition,
    PutOp,
    SearchItem,
    SearchOp,
)


@pytest.fixture
def store(client: Client, namespace: str) -> AgentstateStore:
    return AgentstateStore(client, namespace)


def test_put_get_replace_delete(store: AgentstateStore) -> None:
    ns = ("users", "u1", "memories")
    value = {"text": "likes tea", "n": 3, "ratio": 0.5, "nested": {"a": [1, None, True]}, "uni": "日本 ⛰️"}
    store.put(ns, "m1", value)
    item = store.get(ns, "m1")
    assert isinstance(item, Item)
    assert (item.namespace, item.key, item.value) == (ns, "m1", value)
    assert isinstance(item.created_at, datetime) and item.created_at.tzinfo is not None
    store.put(ns, "m1", {"text": "likes coffee"})
    again = store.get(ns, "m1")
    assert again is not None and again.value == {"text": "likes coffee"}
    assert again.created_at == item.created_at and again.updated_at >= item.updated_at
    assert store.get(("users", "u1"), "m1") is None
    store.delete(ns, "m1")
    assert store.get(ns, "m1") is None
    store.delete(ns, "m1")  # deleting an absent item is fine


def test_namespaces_isolate_tenants(client: Client, namespace: str) -> None:
    a = AgentstateStore(client, namespace)
    b = AgentstateStore(client, namespace + "-b")
    a.put(("x",), "k", {"v": 1})
    assert b.get(("x",), "k") is None
    assert b.search(()) == []


def test_search_prefix_order_limit_offset(store: AgentstateStore) -> None:
    for i, ns in enumerate([("docs",), ("docs", "a"), ("docs", "a", "x"), ("docs", "b"), ("docsx",)]):
        store.put(ns, f"d{i}", {"i": i})
    got = store.search(("docs",))
    assert all(isinstance(r, SearchItem) and r.score is None for r in got)
    assert [r.key for r in got] == ["d3", "d2", "d1", "d0"]  # most recently updated first
    assert [r.key for r in store.search(("docs", "a"))] == ["d2", "d1"]
    assert [r.key for r in store.search(())] == ["d4", "d3", "d2", "d1", "d0"]
    assert [r.key for r in store.search((), limit=2, offset=1)] == ["d3", "d2"]
    assert store.search((), offset=10) == []
    # A query without a vector index is ignored, as in InMemoryStore without an index.
    assert [r.key for r in store.search(("docs",), query="anything", limit=1)] == ["d3"]


def test_search_filters(store: AgentstateStore) -> None:
    store.put(("f",), "a", {"kind": "note", "score": 1, "tags": ["x", "y"], "meta": {"lang": "en"}})
    store.put(("f",), "b", {"kind": "note", "score": 5.5, "tags": ["x"], "meta": {"lang": "fr"}})
    store.put(("f",), "c", {"kind": "task", "score": 9, "done": True})

    def keys(flt: dict) -> list[str]:
        return sorted(r.key for r in store.search(("f",), filter=flt))

    assert keys({"kind": "note"}) == ["a", "b"]
    assert keys({"kind": "note", "score": 5.5}) == ["b"]
    assert keys({"tags": ["x"]}) == ["b"]
    assert keys({"meta": {"lang": "en"}}) == ["a"]
    assert keys({"done": True}) == ["c"]
    assert keys({"score": {"$gt": 1}}) == ["b", "c"]
    assert keys({"score": {"$gte": 1, "$lt": 9}}) == ["a", "b"]
    assert keys({"score": {"$lte": 5.5}}) == ["a", "b"]
    assert keys({"kind": {"$ne": "note"}}) == ["c"]
    assert keys({"kind": {"$eq": "task"}}) == ["c"]
    assert keys({"missing": 1}) == []


def test_search_reads_past_the_page_limit(store: AgentstateStore) -> None:
    store.batch([PutOp(("many",), f"k{i:04d}", {"i": i}) for i in range(1203)])
    got = store.search(("many",), limit=1500)
    assert len(got) == 1203 and len({r.key for r in got}) == 1203
    assert len(store.search(("many",), limit=1100, offset=200)) == 1003


def test_list_namespaces(store: AgentstateStore) -> None:
    paths = [
        ("a", "b", "c"),
        ("a", "b", "d", "e"),
        ("a", "b", "d", "i"),
        ("a", "b", "f"),
        ("a", "c", "f"),
        ("b", "a", "f"),
        ("users", "123"),
        ("users", "456", "settings"),
        ("admin", "users", "789"),
    ]
    for i, p in enumerate(paths):
        store.put(p, f"k{i}", {"i": i})
    assert store.list_namespaces() == sorted(paths)
    assert store.list_namespaces(prefix=("a", "b")) == [
        ("a", "b", "c"),
        ("a", "b", "d", "e"),
        ("a", "b", "d", "i"),
        ("a", "b", "f"),
    ]
    assert store.list_namespaces(suffix=("f",)) == [("a", "b", "f"), ("a", "c", "f"), ("b", "a", "f")]
    assert store.list_namespaces(prefix=("a",), suffix=("f",)) == [("a", "b", "f"), ("a", "c", "f")]
    assert store.list_namespaces(prefix=("a", "*", "f")) == [("a", "b", "f"), ("a", "c", "f")]
    assert store.list_namespaces(suffix=("*", "f")) == [("a", "b", "f"), ("a", "c", "f"), ("b", "a", "f")]
    assert store.list_namespaces(prefix=("a", "b"), max_depth=3) == [("a", "b", "c"), ("a", "b", "d"), ("a", "b", "f")]
    assert store.list_namespaces(max_depth=1) == [("a",), ("admin",), ("b",), ("users",)]
    assert store.list_namespaces(limit=2, offset=1) == [("a", "b", "d", "e"), ("a", "b", "d", "i")]
    assert store.list_namespaces(prefix=("nope",)) == []
    # Two prefix conditions must both hold.
    both = ListNamespacesOp(
        match_conditions=(MatchCondition("prefix", ("a", "*", "f")), MatchCondition("prefix", ("*", "c"))),
        limit=10,
    )
    assert store.batch([both]) == [[("a", "c", "f")]]
    clash = ListNamespacesOp(match_conditions=(MatchCondition("prefix", ("a",)), MatchCondition("prefix", ("b",))))
    assert store.batch([clash]) == [[]]


def test_batch_runs_ops_in_order(store: AgentstateStore) -> None:
    ns = ("batch",)
    results = store.batch(
        [
            PutOp(ns, "k", {"v": 1}),
            GetOp(ns, "k"),
            PutOp(ns, "k", None),
            GetOp(ns, "k"),
            SearchOp(ns),
            ListNamespacesOp(),
        ]
    )
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], Item) and results[1].value == {"v": 1}
    assert results[3] is None and results[4] == [] and results[5] == []


async def test_async_methods(store: AgentstateStore) -> None:
    ns = ("async", "x")
    await asyncio.gather(*(store.aput(ns, f"k{i}", {"i": i}) for i in range(10)))
    item = await store.aget(ns, "k3")
    assert item is not None and item.value == {"i": 3}
    assert len(await store.asearch(("async",), filter={"i": {"$gte": 5}})) == 5
    assert await store.alist_namespaces(prefix=("async",)) == [ns]
    await store.adelete(ns, "k3")
    assert await store.aget(ns, "k3") is None


def test_invalid_namespaces_and_values(store: AgentstateStore) -> None:
    for bad in [(), ("a.b",), ("",), ("langgraph", "x")]:
        with pytest.raises(InvalidNamespaceError):
            store.put(bad, "k", {"v": 1})
    with pytest.raises(InvalidNamespaceError):
        store.batch([GetOp(("a.b",), "k")])
    with pytest.raises(InvalidNamespaceError):
        store.search(("a.b",))
    with pytest.raises(ValueError):
        store.put(("x",), "k", {"v": float("nan")})
    with pytest.raises(TypeError):
        store.put(("x",), "k", {"v": object()})
    # What only the server checks answers INVALID_ARGUMENT naming the field, and writes nothing.
    with pytest.raises(grpc.RpcError) as e:
        store.put(("x",) * 33, "k", {"v": 1})
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "path" in (e.value.details() or "")
    with pytest.raises(grpc.RpcError) as e:
        store.put(("x",), "", {"v": 1})
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "key" in (e.value.details() or "")
    assert store.list_namespaces() == []


def test_bad_tenant_namespace_is_invalid_argument(client: Client) -> None:
    with pytest.raises(grpc.RpcError) as e:
        AgentstateStore(client, "Not Valid").get(("x",), "k")
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "namespace" in (e.value.details() or "")


def test_ttl_default_and_refresh_on_read(client: Client, namespace: str) -> None:
    # 0.02 minutes = 1.2 s.
    store = AgentstateStore(client, namespace, ttl={"default_ttl": 0.02, "refresh_on_read": True})
    assert store.supports_ttl
    store.put(("t",), "default", {"v": 1})
    store.put(("t",), "forever", {"v": 2}, ttl=None)
    store.put(("t",), "kept-alive", {"v": 3})
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:  # reads refresh it: it outlives its TTL
        assert store.get(("t",), "kept-alive") is not None
        time.sleep(0.3)
    assert store.get(("t",), "default", refresh_ttl=False) is None, "expired without reads"
    assert store.get(("t",), "forever") is not None
    assert sorted(r.key for r in store.search(("t",), refresh_ttl=False)) == ["forever", "kept-alive"]
    time.sleep(1.6)
    assert store.get(("t",), "kept-alive") is None, "expired once the reads stopped"


def test_ttl_explicit_and_no_refresh(client: Client, namespace: str) -> None:
    store = AgentstateStore(client, namespace, ttl={"refresh_on_read": False})
    store.put(("t",), "short", {"v": 1}, ttl=0.015)  # 0.9 s
    store.put(("t",), "none", {"v": 2})
    deadline = time.monotonic() + 0.6
    while time.monotonic() < deadline:
        store.get(("t",), "short")  # refresh_on_read False: reads do not extend it
        time.sleep(0.1)
    time.sleep(0.6)
    assert store.get(("t",), "short") is None
    assert store.get(("t",), "none") is not None
    with pytest.raises(ValueError):
        store.put(("t",), "bad", {"v": 1}, ttl=-1)


def test_from_address_closes_its_client(address: str, namespace: str) -> None:
    with AgentstateStore.from_address(address, namespace) as store:
        store.put(("x",), "k", {"v": 1})
        assert store.get(("x",), "k") is not None
