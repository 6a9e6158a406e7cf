"""The Python client against a live agentstate server (see conftest.py)."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, List

import grpc
import pytest

from agentstate import ABSENT, ANY, Client, LockLost, LockNotAcquired, UpdateConflict
from agentstate.v1 import common_pb2, kv_pb2


def test_key_value_round_trip(client: Client, namespace: str) -> None:
    put = client.compare_and_set(namespace, "rt/a", b"hello", expected=ABSENT, content_type="text/plain")
    assert put.applied and put.item.version == 1
    got = client.get(namespace, "rt/a")
    assert got.found and got.item.value == b"hello" and got.header.revision >= put.header.revision
    # A stale version is not an error: the reply carries the current item.
    stale = client.compare_and_set(namespace, "rt/a", "x", expected=7)
    assert not stale.applied and stale.found and stale.item.value == b"hello"
    page = client.list(namespace, "rt/")
    assert [i.key for i in page.items] == ["rt/a"]
    assert client.delete(namespace, "rt/a", expected=1).applied
    assert not client.get(namespace, "rt/a").found


def test_invalid_argument_names_the_field(client: Client, namespace: str) -> None:
    with pytest.raises(grpc.RpcError) as info:
        client.get(namespace, "")
    err: Any = info.value
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert ("agentstate-field", "key") in list(err.trailing_metadata())


def test_value_limit_is_the_servers(client: Client, namespace: str) -> None:
    """The largest value the server accepts goes through the client's transport;
    one byte more gets the server's INVALID_ARGUMENT naming the field."""
    big = b"x" * (1 << 20)
    client.put(namespace, "big", big)
    assert len(client.get(namespace, "big").item.value) == 1 << 20
    with pytest.raises(grpc.RpcError) as info:
        client.put(namespace, "big", big + b"x")
    err: Any = info.value
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "value" in err.details()


class _Recorder(grpc.UnaryUnaryClientInterceptor):
    """Records each call's details and request; `hook` may replace the outcome."""

    def __init__(self, hook: Callable[[Any, Any, Any], Any] | None = None) -> None:
        self.calls: List[Any] = []
        self.hook = hook

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        self.calls.append((details, request))
        outcome = continuation(details, request)
        return self.hook(details, request, outcome) if self.hook else outcome


def test_every_call_has_a_deadline(address: str, namespace: str) -> None:
    rec = _Recorder()
    with Client(address, interceptors=[rec]) as c:
        c.get(namespace, "dl")
        c.put(namespace, "dl", b"1")
        c.update(namespace, "dl", lambda cur: b"2")
        with c.lock(namespace, "dl", ttl=1):
            pass
    assert len(rec.calls) >= 6
    assert all(d.timeout is not None and d.timeout > 0 for d, _ in rec.calls)


def _increment(cur: common_pb2.Item | None) -> bytes:
    return str(int(cur.value) + 1 if cur is not None else 1).encode()


def test_update_never_loses_an_increment(address: str, namespace: str) -> None:
    """10 concurrent updaters (one client each) x 20 increments end at exactly 200."""
    workers, increments = 10, 20
    errors: List[BaseException] = []

    def worker() -> None:
        with Client(address) as c:
            try:
                for _ in range(increments):
                    assert c.update(namespace, "counter", _increment).applied
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    with Client(address) as c:
        got = c.get(namespace, "counter")
    assert got.item.value == str(workers * increments).encode()
    assert got.item.version == workers * increments


def test_update_abort_and_conflict(client: Client, namespace: str) -> None:
    client.put(namespace, "abort", b"keep", content_type="text/plain")
    res = client.update(namespace, "abort", lambda cur: None if cur and cur.value == b"keep" else b"changed")
    assert not res.applied and res.item is not None and res.item.value == b"keep"
    assert client.get(namespace, "abort").item.version == 1
    # An update keeps the content type unless told otherwise.
    res = client.update(namespace, "abort", lambda cur: b"changed")
    assert res.applied and res.item.content_type == "text/plain" and res.item.version == 2

    def interfere(cur: common_pb2.Item | None) -> bytes:
        client.put(namespace, "abort", b"someone else")  # always beaten
        return b"mine"

    with pytest.raises(UpdateConflict):
        client.update(namespace, "abort", interfere, max_attempts=3)


def test_lock_mutual_exclusion(address: str, namespace: str) -> None:
    """Workers on separate clients take turns; each does a read-modify-write
    that is only correct under mutual exclusion, fenced with its token."""
    workers, rounds = 4, 5
    active = 0
    max_active = 0
    guard = threading.Lock()
    errors: List[BaseException] = []

    def worker() -> None:
        nonlocal active, max_active
        with Client(address) as c:
            try:
                for _ in range(rounds):
                    with c.lock(namespace, "mutex", ttl=5, owner="worker") as held:
                        with guard:
                            active += 1
                            max_active = max(max_active, active)
                        got = c.get(namespace, "mutex/count")
                        n = int(got.item.value) if got.found else 0
                        time.sleep(0.005)
                        c.put(namespace, "mutex/count", str(n + 1), fence=held.fence)
                        with guard:
                            active -= 1
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert max_active == 1
    with Client(address) as c:
        assert c.get(namespace, "mutex/count").item.value == str(workers * rounds).encode()


def _try_lock(c: Client, namespace: str, name: str) -> Any:
    r = c.acquire_lock(namespace, name, ttl=5, owner="probe")
    if r.acquired:
        c.unlock(namespace, name, r.lock_id)
    return r


def test_lock_renews_past_its_ttl_and_releases(client: Client, address: str, namespace: str) -> None:
    with Client(address) as probe:
        with client.lock(namespace, "renewed", ttl=1, owner="long-job") as held:
            time.sleep(2.5)  # 2.5 x ttl
            r = _try_lock(probe, namespace, "renewed")
            assert not r.acquired and r.holder_owner == "long-job"
            assert not held.lost.is_set()
        assert _try_lock(probe, namespace, "renewed").acquired


def test_lock_lost_is_reported(client: Client, namespace: str) -> None:
    with pytest.raises(LockLost):
        with client.lock(namespace, "lost", ttl=0.9) as held:
            client.unlock(namespace, "lost", held.lock_id)  # released behind our back
            assert held.lost.wait(10), "renewal failure was not noticed"
            assert isinstance(held.lost_reason, grpc.RpcError)


def test_lock_not_acquired(client: Client, namespace: str) -> None:
    first = client.acquire_lock(namespace, "busy", ttl=10, owner="first")
    assert first.acquired
    try:
        with pytest.raises(LockNotAcquired) as info:
            with client.lock(namespace, "busy", wait=0.2):
                pytest.fail("body ran without the lock")
        assert info.value.holder_owner == "first"
    finally:
        client.unlock(namespace, "busy", first.lock_id)


def test_stale_fence_is_refused(client: Client, namespace: str) -> None:
    with client.lock(namespace, "fenced") as old:
        pass
    with client.lock(namespace, "fenced") as new:
        assert new.token > old.token
        client.put(namespace, "fenced/v", b"new", fence=new.fence)
    with pytest.raises(grpc.RpcError) as info:
        client.put(namespace, "fenced/v", b"old", fence=old.fence)
    err: Any = info.value
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION


class _LostReply(grpc.RpcError, grpc.Call):  # type: ignore[misc]
    """What a caller sees when the server applied the write but the reply was lost."""

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE

    def details(self) -> str:
        return "reply lost (test)"

    def initial_metadata(self) -> Any:
        return ()

    def trailing_metadata(self) -> Any:
        return ()

    def is_active(self) -> bool:
        return False

    def time_remaining(self) -> Any:
        return None

    def cancel(self) -> bool:
        return False

    def add_callback(self, callback: Any) -> bool:
        return False


def test_put_retry_with_the_same_key_writes_once(address: str, namespace: str) -> None:
    keys: List[str] = []

    def drop_first_reply(details: Any, request: Any, outcome: Any) -> Any:
        if isinstance(request, kv_pb2.CompareAndSetRequest):
            keys.append(request.idempotency_key)
            if len(keys) == 1:
                outcome.result()  # the write reached the server and was applied
                raise _LostReply()
        return outcome

    with Client(address, interceptors=[_Recorder(drop_first_reply)]) as c:
        res = c.put(namespace, "once", b"paid", expected=ABSENT)
        assert len(keys) == 2 and keys[0] and keys[0] == keys[1]
        assert res.applied and res.replayed and res.item.version == 1
        assert c.get(namespace, "once").item.version == 1
        # A new put is a new logical write with a new key.
        again = c.put(namespace, "once", b"again", expected=ANY)
        assert again.applied and not again.replayed and again.item.version == 2 and keys[2] != keys[0]
