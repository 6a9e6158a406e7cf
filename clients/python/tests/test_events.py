"""The Python client's event helpers against a live agentstate server (see conftest.py)."""

from __future__ import annotations

import re
import threading
import time
from typing import Any, Callable, Iterator, List, Optional

import grpc
import pytest

from agentstate import ANY, EXISTS, NO_STREAM, Backoff, Client, NewEvent, ReconnectInfo, Subscription
from agentstate.v1 import event_pb2

UUID_V4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def ev(type_: str, data: str = "") -> NewEvent:
    return NewEvent(type_, data, {"by": "pytest"})


def take(sub: Subscription, pred: Callable[[List[Any]], bool], timeout: float = 30.0) -> List[Any]:
    """Messages from `sub` until pred(messages so far) holds; closes `sub` and
    fails if that takes longer than `timeout` (so a bug cannot hang the suite)."""
    got: List[Any] = []
    timer = threading.Timer(timeout, sub.close)
    timer.start()
    try:
        for m in sub:
            got.append(m)
            if pred(got):
                return got
    finally:
        timer.cancel()
    pytest.fail(f"subscription ended after {len(got)} messages (timeout {timeout}s?)")


def events_of(msgs: List[Any]) -> List[event_pb2.RecordedEvent]:
    return [m for m in msgs if isinstance(m, event_pb2.RecordedEvent)]


def assert_increasing(events: List[event_pb2.RecordedEvent]) -> None:
    for a, b in zip(events, events[1:]):
        assert b.position > a.position, f"position {b.position} after {a.position}"


class Appender:
    """Appends batches of 1..3 events to a stream from a thread; records the acknowledged ids."""

    def __init__(self, address: str, namespace: str, stream: str, batches: int) -> None:
        self.ids: List[str] = []
        self.last_position = 0
        self.error: Optional[BaseException] = None
        self._stop = threading.Event()

        def run() -> None:
            with Client(address) as c:
                try:
                    for n in range(batches):
                        if self._stop.is_set():
                            return
                        batch = [NewEvent("tick", f"{n}.{i}") for i in range(1 + n % 3)]
                        r = c.append_event(namespace, stream, batch, ANY)
                        assert r.applied
                        self.ids.extend(r.event_ids)
                        self.last_position = r.position + len(batch) - 1
                        time.sleep(0.005)
                except BaseException as e:  # noqa: BLE001 - reported by join()
                    self.error = e

        self._thread = threading.Thread(target=run)
        self._thread.start()

    def join(self, stop: bool = False) -> None:
        if stop:
            self._stop.set()
        self._thread.join(60)
        assert not self._thread.is_alive()
        if self.error is not None:
            raise self.error


def test_append_expected_versions(client: Client, namespace: str) -> None:
    first = client.append_event(namespace, "exp", [ev("a", "1"), ev("b", "2")], NO_STREAM)
    assert first.applied and not first.replayed
    assert (first.first_version, first.current_version) == (1, 2)
    assert len(first.event_ids) == 2 and all(UUID_V4.match(i) for i in first.event_ids)
    assert 0 < first.position <= first.revision

    # A mismatch is not an error: applied=False with the current version.
    again = client.append_event(namespace, "exp", [ev("c")], NO_STREAM)
    assert (again.applied, again.current_version) == (False, 2)
    stale = client.append_event(namespace, "exp", [ev("c")], 1)
    assert (stale.applied, stale.current_version) == (False, 2)
    on_version = client.append_event(namespace, "exp", [ev("c", "3")], 2)
    assert (on_version.applied, on_version.first_version, on_version.current_version) == (True, 3, 3)
    exists = client.append_event(namespace, "exp", [ev("d", "4")], EXISTS)
    assert (exists.applied, exists.current_version) == (True, 4)
    missing = client.append_event(namespace, "exp-none", [ev("d")], EXISTS)
    assert (missing.applied, missing.current_version) == (False, 0)
    # EventData messages are accepted too (an id is generated when empty).
    pb = event_pb2.EventData(type="e", data=b"5", metadata={"by": "pytest"})
    any_ = client.append_event(namespace, "exp", [pb], ANY)
    assert (any_.applied, any_.first_version) == (True, 5) and pb.id == "" and UUID_V4.match(any_.event_ids[0])

    read = list(client.read_stream(namespace, "exp"))
    assert [(e.stream_version, e.type, e.data, e.metadata["by"]) for e in read] == [
        (1, "a", b"1", "pytest"),
        (2, "b", b"2", "pytest"),
        (3, "c", b"3", "pytest"),
        (4, "d", b"4", "pytest"),
        (5, "e", b"5", "pytest"),
    ]
    assert tuple(e.id for e in read[:2]) == first.event_ids
    with pytest.raises(grpc.RpcError) as info:
        client.append_event(namespace, "exp", [], ANY)
    err: Any = info.value
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and ("agentstate-field", "events") in err.trailing_metadata()


class _LostReply(grpc.RpcError, grpc.Call):  # type: ignore[misc]
    """What a caller sees when the server applied the append but the reply was lost."""

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


class _DropFirstAppendReply(grpc.UnaryUnaryClientInterceptor):
    def __init__(self) -> None:
        self.sent: List[List[str]] = []
        self.timeouts: List[Optional[float]] = []

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        outcome = continuation(details, request)
        if isinstance(request, event_pb2.AppendEventRequest):
            self.sent.append([e.id for e in request.events])
            self.timeouts.append(details.timeout)
            if len(self.sent) == 1:
                outcome.result()  # the append reached the server and was applied
                raise _LostReply()
        return outcome


def test_append_retry_resends_the_same_ids(address: str, namespace: str) -> None:
    drop = _DropFirstAppendReply()
    with Client(address, interceptors=[drop]) as c:
        r = c.append_event(namespace, "idem", [ev("paid"), ev("shipped")], NO_STREAM)
        assert len(drop.sent) == 2 and drop.sent[0] == drop.sent[1] == list(r.event_ids)
        assert all(t is not None and t > 0 for t in drop.timeouts), "every attempt has a deadline"
        assert r.applied and r.replayed, "the retry was appended again instead of replayed"
        assert (r.first_version, r.current_version) == (1, 2)
        read = list(c.read_stream(namespace, "idem"))
        assert tuple(e.id for e in read) == r.event_ids and read[0].position == r.position

        # The same ids sent again by the caller (e.g. after a restart): a replay too.
        resent = c.append_event(namespace, "idem", [NewEvent(e.type, e.data, e.metadata, e.id) for e in read], ANY)
        assert (resent.applied, resent.replayed, resent.position) == (True, True, r.position)
        # A new call is a new append, with new ids.
        nxt = c.append_event(namespace, "idem", [ev("paid")], 2)
        assert (nxt.applied, nxt.replayed, nxt.first_version) == (True, False, 3)
        assert nxt.event_ids[0] not in r.event_ids
        assert len(list(c.read_stream(namespace, "idem"))) == 3


def test_append_fenced(client: Client, namespace: str) -> None:
    with client.lock(namespace, "stream-lock") as old:
        assert client.append_event(namespace, "fenced", [ev("under-lock")], ANY, fence=old.fence).applied
    with client.lock(namespace, "stream-lock"):
        pass
    with pytest.raises(grpc.RpcError) as info:
        client.append_event(namespace, "fenced", [ev("stale")], ANY, fence=old.fence)
    err: Any = info.value
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_read_stream_both_directions(client: Client, namespace: str) -> None:
    client.append_event(namespace, "read", [ev("n", str(i + 1)) for i in range(25)], NO_STREAM)

    def versions(**kw: Any) -> List[int]:
        return [e.stream_version for e in client.read_stream(namespace, "read", **kw)]

    everything = list(client.read_stream(namespace, "read"))
    assert [e.data for e in everything] == [str(i + 1).encode() for i in range(25)]
    assert_increasing(everything)
    assert versions(direction="backwards") == list(range(25, 0, -1))
    assert versions(from_version=20) == [20, 21, 22, 23, 24, 25]
    assert versions(from_version=5, limit=3) == [5, 6, 7]
    assert versions(direction="backwards", from_version=5) == [5, 4, 3, 2, 1]
    assert versions(direction=event_pb2.DIRECTION_BACKWARDS, limit=2) == [25, 24]
    # Leaving early: close the generator (a for loop's break does it once collected).
    gen = client.read_stream(namespace, "read")
    assert [next(gen).stream_version for _ in range(3)] == [1, 2, 3]
    gen.close()
    with pytest.raises(grpc.RpcError) as info:
        list(client.read_stream(namespace, "read-none"))
    err: Any = info.value
    assert err.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(ValueError):
        list(client.read_stream(namespace, "read", direction="sideways"))


class _StreamRecorder(grpc.UnaryStreamClientInterceptor):
    def __init__(self) -> None:
        self.timeouts: dict[str, Optional[float]] = {}

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        self.timeouts[details.method.rsplit("/", 1)[-1]] = details.timeout
        return continuation(details, request)


def test_read_stream_has_a_deadline_subscribe_none(address: str, namespace: str) -> None:
    rec = _StreamRecorder()
    with Client(address, interceptors=[rec], timeout=5) as c:
        c.append_event(namespace, "dl", [ev("x")], ANY)
        list(c.read_stream(namespace, "dl"))
        with c.subscribe(namespace, stream="dl") as sub:
            take(sub, lambda got: isinstance(got[-1], event_pb2.CaughtUp))
    assert rec.timeouts["ReadStream"] == 5
    assert rec.timeouts["Subscribe"] is None


def test_subscribe_catch_up_then_caught_up_then_live(client: Client, address: str, namespace: str) -> None:
    a1 = client.append_event(namespace, "cart-1", [ev("item"), ev("item"), ev("item")], NO_STREAM)
    client.append_event(namespace, "other-1", [ev("not-under-the-prefix")], ANY)
    b1 = client.append_event(namespace, "cart-2", [ev("item")], NO_STREAM)
    before = [*a1.event_ids, *b1.event_ids]

    with Client(address) as reader, reader.subscribe(namespace, stream_prefix="cart-") as sub:
        assert sub.position == 0 and not sub.caught_up
        got = take(sub, lambda g: isinstance(g[-1], event_pb2.CaughtUp))
        assert [e.id for e in events_of(got)] == before
        assert_increasing(events_of(got))
        assert len(got) == len(before) + 1, "one caughtUp, after the catch-up"
        assert got[-1].position == b1.position == sub.position and sub.caught_up

        live = client.append_event(namespace, "cart-1", [ev("live"), ev("live")], 3)
        client.append_event(namespace, "other-1", [ev("not-under-the-prefix")], ANY)
        live2 = client.append_event(namespace, "cart-3", [ev("live")], NO_STREAM)
        more = take(sub, lambda g: len(g) == 3)
        assert [m.id for m in more] == [*live.event_ids, *live2.event_ids]
        assert sub.position == live2.position and sub.reconnects == 0

    # close() ended it: iterating again stops at once.
    assert sub.closed and list(sub) == []

    # A single stream from a position: only what follows it.
    with client.subscribe(namespace, stream="cart-1", after_position=a1.position + 1) as one:
        got = take(one, lambda g: isinstance(g[-1], event_pb2.CaughtUp))
        assert [e.id for e in events_of(got)] == [a1.event_ids[2], *live.event_ids]


def test_subscribe_close_from_another_thread_and_unfixable_errors(address: str, client: Client, namespace: str) -> None:
    client.append_event(namespace, "closed", [ev("a"), ev("b")], NO_STREAM)
    sub = client.subscribe(namespace, stream="closed")
    got = take(sub, lambda g: isinstance(g[-1], event_pb2.CaughtUp))
    assert len(events_of(got)) == 2
    threading.Timer(0.2, sub.close).start()
    assert list(sub) == [], "close() from another thread ends a blocked iteration"
    # Closing the client ends its subscriptions the same way.
    other = Client(address)
    sub = other.subscribe(namespace, stream="closed")
    take(sub, lambda g: isinstance(g[-1], event_pb2.CaughtUp))
    threading.Timer(0.2, other.close).start()
    assert list(sub) == [] and sub.closed

    with pytest.raises(grpc.RpcError) as info:
        next(client.subscribe("Not A Namespace!", stream_prefix=""))
    err: Any = info.value
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(ValueError):
        client.subscribe(namespace, stream="a", stream_prefix="b")


def test_resubscribe_from_the_last_position_while_appends_go_on(address: str, client: Client, namespace: str) -> None:
    stream = "cont"
    writer = Appender(address, namespace, stream, 60)
    with client.subscribe(namespace, stream=stream) as first:
        seen = events_of(take(first, lambda g: len(events_of(g)) == 15))
        resume_from = first.position
    assert resume_from == seen[-1].position
    with client.subscribe(namespace, stream=stream, after_position=resume_from) as second:
        writer.join()
        seen += events_of(take(second, lambda g: second.position >= writer.last_position))
    assert_increasing(seen)
    stored = [e.id for e in client.read_stream(namespace, stream)]
    assert [e.id for e in seen] == stored == writer.ids


class _StreamBroken(grpc.RpcError, grpc.Call):  # type: ignore[misc]
    """A subscription stream broken by the transport or the server."""

    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return f"stream broken ({self._code.name}, test)"

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


class _BreakSubscriptions(grpc.UnaryStreamClientInterceptor):
    """Breaks each of the first `breaks` Subscribe streams with `code` after
    `after` messages, as a lost connection or a server would; records each
    request's after_position."""

    def __init__(self, code: grpc.StatusCode, after: int, breaks: int) -> None:
        self.code, self.after, self.breaks = code, after, breaks
        self.after_positions: List[int] = []

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        call = continuation(details, request)
        if not isinstance(request, event_pb2.SubscribeRequest):
            return call
        self.after_positions.append(request.after_position)
        if len(self.after_positions) > self.breaks:
            return call
        outer = self

        class Breaking:
            def __init__(self) -> None:
                self.n = 0

            def __iter__(self) -> Iterator[Any]:
                return self

            def __next__(self) -> Any:
                if self.n == outer.after:
                    call.cancel()
                    raise _StreamBroken(outer.code)
                self.n += 1
                return next(call)

            def cancel(self) -> bool:
                return call.cancel()

        return Breaking()


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED])
def test_subscription_resumes_after_a_broken_stream(
    address: str, client: Client, namespace: str, code: grpc.StatusCode
) -> None:
    stream = f"broken-{code.name.lower()}"
    first = client.append_event(namespace, stream, [ev("n", str(i)) for i in range(10)], NO_STREAM)
    breaker = _BreakSubscriptions(code, after=4, breaks=2)
    infos: List[ReconnectInfo] = []
    with Client(address, interceptors=[breaker]) as c:
        sub = c.subscribe(namespace, stream=stream, backoff=_fast(), on_reconnect=infos.append)
        with sub:
            got = take(sub, lambda g: isinstance(g[-1], event_pb2.CaughtUp))
            live = client.append_event(namespace, stream, [ev("live")], 10)
            got += take(sub, lambda g: len(g) == 1)
    seen = events_of(got)
    assert [e.id for e in seen] == [*first.event_ids, *live.event_ids], "no gap, no duplicate"
    assert sub.reconnects == 2 and [i.error.code() for i in infos if i.error is not None] == [code] * 2
    # Each resubscription started after the last event delivered; one caughtUp in all.
    assert breaker.after_positions == [0, seen[3].position, seen[7].position]
    assert sum(isinstance(m, event_pb2.CaughtUp) for m in got) == 1


def test_subscription_gives_up_after_max_reconnects(address: str, namespace: str) -> None:
    breaker = _BreakSubscriptions(grpc.StatusCode.UNAVAILABLE, after=0, breaks=100)
    with Client(address, interceptors=[breaker]) as c:
        sub = c.subscribe(namespace, stream="never", backoff=_fast(), max_reconnects=2)
        with pytest.raises(grpc.RpcError) as info:
            next(sub)
    err: Any = info.value
    assert err.code() == grpc.StatusCode.UNAVAILABLE and len(breaker.after_positions) == 3


def _fast() -> Backoff:
    return Backoff(0.001, 0.01)
