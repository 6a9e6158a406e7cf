"""Event streams: what append_event() takes and returns, and Subscription, a
resumable EventService.Subscribe."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Mapping, Optional, Tuple, Union

import grpc

from ._backoff import Backoff
from .v1 import event_pb2

#: Expected stream conditions for append_event (besides a version number and
#: ``ANY``): the stream has no events yet / has at least one.
NO_STREAM = "no_stream"
EXISTS = "exists"

Payload = Union[bytes, bytearray, memoryview, str]
#: A version (int >= 1), ``ANY``, ``NO_STREAM``, ``EXISTS`` or the message itself.
ExpectedVersion = Union[int, str, event_pb2.ExpectedStream]


@dataclass(frozen=True)
class NewEvent:
    """An event to append. ``id`` (a UUID) makes the append idempotent; when
    empty, :meth:`Client.append_event` generates a UUIDv4 once per call, so its
    retries re-send the same id. Pass your own to stay idempotent across
    process restarts."""

    type: str
    data: Payload = b""
    metadata: Mapping[str, str] = field(default_factory=dict)
    id: str = ""


@dataclass(frozen=True)
class AppendResult:
    """Outcome of :meth:`Client.append_event`: the server's reply plus the ids sent."""

    #: True when the events were appended (or had been, for a replay).
    applied: bool
    #: True when every id had already been appended: nothing was written again.
    replayed: bool
    #: The stream's version after the append, or its current version on a mismatch (0: no stream).
    current_version: int
    #: Version of the first event of the batch, when applied.
    first_version: int
    #: Position of the first event of the batch, when applied.
    position: int
    #: The namespace's revision the reply reflects.
    revision: int
    #: The id of each event, in order (generated ones included).
    event_ids: Tuple[str, ...]


def new_event_id() -> str:
    """A UUIDv4 for an event id."""
    return str(uuid.uuid4())


def _payload(v: Payload) -> bytes:
    return v.encode("utf-8") if isinstance(v, str) else bytes(v)


def expected_stream(e: ExpectedVersion) -> event_pb2.ExpectedStream:
    if isinstance(e, event_pb2.ExpectedStream):
        return e
    if isinstance(e, bool):
        raise TypeError("expected must be a version (int), ANY, NO_STREAM or EXISTS")
    if isinstance(e, int):
        return event_pb2.ExpectedStream(version=e)
    if e == "any":
        return event_pb2.ExpectedStream(any=True)
    if e == NO_STREAM:
        return event_pb2.ExpectedStream(no_stream=True)
    if e == EXISTS:
        return event_pb2.ExpectedStream(exists=True)
    raise ValueError(f"expected must be a version (int), ANY, NO_STREAM or EXISTS, got {e!r}")


def event_data(events: Iterable[Union[NewEvent, event_pb2.EventData]]) -> list[event_pb2.EventData]:
    """The events as sent: a fresh UUIDv4 where the id is missing; inputs untouched."""
    out = []
    for e in events:
        if isinstance(e, event_pb2.EventData):
            d = event_pb2.EventData()
            d.CopyFrom(e)
            if not d.id:
                d.id = new_event_id()
        elif isinstance(e, NewEvent):
            d = event_pb2.EventData(
                id=e.id or new_event_id(), type=e.type, data=_payload(e.data), metadata=dict(e.metadata)
            )
        else:
            raise TypeError(f"events must be NewEvent or EventData, got {type(e).__name__}")
        out.append(d)
    return out


def direction(d: Union[str, int]) -> int:
    if d == "forwards":
        return event_pb2.DIRECTION_FORWARDS
    if d == "backwards":
        return event_pb2.DIRECTION_BACKWARDS
    if isinstance(d, int) and not isinstance(d, bool):
        return d
    raise ValueError(f"direction must be 'forwards' or 'backwards', got {d!r}")


_RESUMABLE = (
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
)


def is_resumable(err: BaseException) -> bool:
    """True for errors after which a subscription resumes from its last
    position instead of failing: UNAVAILABLE (server shutting down, connection
    lost), RESOURCE_EXHAUSTED (the consumer stalled), DEADLINE_EXCEEDED."""
    return isinstance(err, grpc.RpcError) and callable(getattr(err, "code", None)) and err.code() in _RESUMABLE


@dataclass(frozen=True)
class ReconnectInfo:
    """Why and from where a :class:`Subscription` subscribes again."""

    #: The error that broke the stream (None: the server ended it without one).
    error: Optional[grpc.RpcError]
    #: Consecutive failed connections so far (1 after the first).
    attempt: int
    #: The position the next connection resumes after.
    after_position: int
    #: Backoff before that connection, in seconds.
    delay: float


#: What a Subscription yields: an event, or the marker that catch-up is over.
Message = Union[event_pb2.RecordedEvent, event_pb2.CaughtUp]


class Subscription:
    """A resumable subscription; made by :meth:`Client.subscribe`.

    An iterator of :class:`~agentstate.v1.event_pb2.RecordedEvent` and, after
    the catch-up of every connection, one
    :class:`~agentstate.v1.event_pb2.CaughtUp` (``position``: everything up to
    there has been delivered; delivery is live from then on)::

        with client.subscribe("demo", stream_prefix="cart-", after_position=saved) as sub:
            for m in sub:
                if isinstance(m, RecordedEvent):
                    handle(m)
                    saved = sub.position

    ``position`` is the resume point (the last event delivered). When the
    stream breaks (UNAVAILABLE: server shutdown or connection lost;
    RESOURCE_EXHAUSTED: the consumer stalled longer than the server allows;
    DEADLINE_EXCEEDED; or a stream ended by the server) it subscribes again
    after ``position``, after a jittered backoff: positions are the
    namespace's revisions, in its commit order, so nothing is skipped, and events at or below
    ``position`` are dropped, so nothing is delivered twice. Any other error
    is raised. ``close()`` (from any thread) or leaving the ``with`` block ends
    it: iteration then stops without an error.
    """

    def __init__(
        self,
        open_call: Callable[[event_pb2.SubscribeRequest], grpc.Call],
        namespace: str,
        *,
        stream: Optional[str],
        stream_prefix: Optional[str],
        after_position: int,
        backoff: Backoff,
        max_reconnects: Optional[int],
        on_reconnect: Optional[Callable[[ReconnectInfo], None]],
    ) -> None:
        if (stream is None) == (stream_prefix is None):
            raise ValueError("subscribe to exactly one of stream= or stream_prefix=")
        self._open = open_call
        self.namespace = namespace
        self.stream = stream
        self.stream_prefix = stream_prefix
        #: Position of the last event delivered; starts at ``after_position``.
        self.position = after_position
        #: True once a CaughtUp has been delivered (the subscription has gone live).
        self.caught_up = False
        #: Resubscriptions so far.
        self.reconnects = 0
        self._backoff = backoff
        self._max_reconnects = max_reconnects
        self._on_reconnect = on_reconnect
        self._closed = threading.Event()
        self._mu = threading.Lock()
        self._call: Optional[grpc.Call] = None
        self._gen = self._run()

    def __iter__(self) -> "Subscription":
        return self

    def __next__(self) -> Message:
        return next(self._gen)

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def close(self) -> None:
        """End the subscription (thread-safe): cancels the call in flight; an
        iteration in progress stops without an error."""
        self._closed.set()
        with self._mu:
            call = self._call
        if call is not None:
            call.cancel()

    def _request(self) -> event_pb2.SubscribeRequest:
        if self.stream is not None:
            return event_pb2.SubscribeRequest(
                namespace=self.namespace, stream=self.stream, after_position=self.position
            )
        return event_pb2.SubscribeRequest(
            namespace=self.namespace, stream_prefix=self.stream_prefix or "", after_position=self.position
        )

    def _run(self) -> Iterator[Message]:
        failures = 0
        while not self._closed.is_set():
            call = self._open(self._request())
            with self._mu:
                self._call = call
            if self._closed.is_set():  # closed while the call was being made
                call.cancel()
            error: Optional[grpc.RpcError] = None
            try:
                for res in call:  # type: ignore[attr-defined]
                    failures = 0
                    kind = res.WhichOneof("kind")
                    if kind == "event":
                        # At or below the resume point: already delivered (never twice).
                        if res.event.position <= self.position:
                            continue
                        self.position = res.event.position
                        yield res.event
                    elif kind == "caught_up":
                        self.caught_up = True
                        yield res.caught_up
            except grpc.RpcError as e:
                error = e
            finally:
                call.cancel()
                with self._mu:
                    self._call = None
            if self._closed.is_set():
                return
            if error is not None and not is_resumable(error):
                raise error
            failures += 1
            if self._max_reconnects is not None and failures > self._max_reconnects:
                if error is not None:
                    raise error
                raise RuntimeError("subscription ended by the server")
            delay = self._backoff.delay(failures)
            self.reconnects += 1
            if self._on_reconnect is not None:
                self._on_reconnect(ReconnectInfo(error, failures, self.position, delay))
            if self._closed.wait(delay):
                return
