"""Client: the agentstate.v1 RPCs with deadlines and matched message limits,
plus update() (CAS retry loop), put() (idempotent retries), lock(), and the
event helpers append_event() (idempotent retries), read_stream() and
subscribe() (resumable)."""

from __future__ import annotations

import time
import uuid
import weakref
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable, Iterable, Iterator, Optional, Sequence, Tuple, TypeVar, Union

import grpc
from google.protobuf import duration_pb2

try:
    from .v1 import (
        checkpoint_pb2_grpc,
        common_pb2,
        event_pb2,
        event_pb2_grpc,
        kv_pb2,
        kv_pb2_grpc,
        lock_pb2,
        lock_pb2_grpc,
        store_pb2_grpc,
    )
except ImportError as e:  # pragma: no cover - only in a tree that was never generated
    raise ImportError(
        "agentstate.v1 (the generated code) is missing: run scripts/gen-clients.sh python "
        "from the repository root, then reinstall"
    ) from e

from ._backoff import Backoff
from ._errors import UpdateConflict
from ._events import (
    AppendResult,
    ExpectedVersion,
    NewEvent,
    ReconnectInfo,
    Subscription,
    direction as _direction,
    event_data,
    expected_stream,
)
from ._lock import Lock
from ._token import TokenInterceptor, TokenSource

#: The server's default gRPC message limit: the larger of the value limit
#: (1 MiB) and the append-batch limit (4 MiB), plus 64 KiB of envelope.
DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024 + 64 * 1024
#: Deadline of every call, in seconds, unless the call says otherwise.
DEFAULT_TIMEOUT = 10.0

#: Expected conditions: a version number (int), ``ANY`` or ``ABSENT``.
ANY = "any"
ABSENT = "absent"

Seconds = Union[float, int, timedelta]
Expected = Union[int, str, kv_pb2.Expected]
Value = Union[bytes, bytearray, memoryview, str]
#: Computes a key's new value from its current item (None when absent); None aborts.
UpdateFn = Callable[[Optional[common_pb2.Item]], Optional[Value]]

T = TypeVar("T")

_RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def is_retryable(err: BaseException) -> bool:
    """True for failures after which the outcome is unknown but a retry may
    succeed: UNAVAILABLE or DEADLINE_EXCEEDED. Retry a write blindly only when
    it carries an idempotency key."""
    return isinstance(err, grpc.RpcError) and callable(getattr(err, "code", None)) and err.code() in _RETRYABLE


def new_idempotency_key() -> str:
    """A random key (128 bits, hex) for one logical write."""
    return uuid.uuid4().hex


def _seconds(v: Seconds) -> float:
    return v.total_seconds() if isinstance(v, timedelta) else float(v)


def _duration(v: Seconds) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromNanoseconds(round(_seconds(v) * 1e9))
    return d


def _bytes(v: Value) -> bytes:
    return v.encode("utf-8") if isinstance(v, str) else bytes(v)


def _expected(e: Expected) -> kv_pb2.Expected:
    if isinstance(e, kv_pb2.Expected):
        return e
    if isinstance(e, bool):
        raise TypeError("expected must be a version (int), ANY or ABSENT")
    if isinstance(e, int):
        return kv_pb2.Expected(version=e)
    if e == ANY:
        return kv_pb2.Expected(any=True)
    if e == ABSENT:
        return kv_pb2.Expected(absent=True)
    raise ValueError(f"expected must be a version (int), ANY or ABSENT, got {e!r}")


@dataclass(frozen=True)
class UpdateResult:
    """Outcome of :meth:`Client.update`."""

    #: False only when the function returned None (aborted).
    applied: bool
    #: The written item; when aborted, the current one (None: absent).
    item: Optional[common_pb2.Item]
    #: Revision of the write, or of the state last seen when aborted.
    revision: int
    #: Compare-and-set attempts made (0 when aborted at once).
    attempts: int


def tls_credentials(
    ca_file: Optional[str] = None, cert_file: Optional[str] = None, key_file: Optional[str] = None
) -> grpc.ChannelCredentials:
    """TLS channel credentials from PEM files: ``ca_file`` is the CA that signed
    the server's certificate (None: the system's CAs); ``cert_file`` and
    ``key_file`` the client certificate for mTLS (both or neither)."""
    if (cert_file is None) != (key_file is None):
        raise ValueError("tls_cert_file and tls_key_file go together")

    def read(path: Optional[str]) -> Optional[bytes]:
        if path is None:
            return None
        with open(path, "rb") as f:
            return f.read()

    return grpc.ssl_channel_credentials(
        root_certificates=read(ca_file), private_key=read(key_file), certificate_chain=read(cert_file)
    )


class Client:
    """A connection to one agentstate endpoint; thread-safe.

    ``address`` is anything grpcio accepts (``"127.0.0.1:50051"``,
    ``"dns:///agentstate:50051"``). ``tls_ca_file`` (the CA that signed the
    server's certificate) switches to TLS, with ``tls_cert_file`` and
    ``tls_key_file`` as the client certificate for a server that requires
    mTLS; ``credentials`` gives grpcio credentials instead; ``token`` (an
    API token or JWT, or a function returning the current one, called before
    every call) is sent as ``authorization: Bearer ...`` to a server with
    AGENTSTATE_AUTH=required; ``interceptors`` wrap the channel (tracing). The generated stubs are
    available as ``kv``, ``locks`` and ``events`` for anything not wrapped here.
    """

    def __init__(
        self,
        address: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        credentials: Optional[grpc.ChannelCredentials] = None,
        tls_ca_file: Optional[str] = None,
        tls_cert_file: Optional[str] = None,
        tls_key_file: Optional[str] = None,
        token: Optional[TokenSource] = None,
        interceptors: Sequence[Union[grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor]] = (),
        options: Sequence[Tuple[str, object]] = (),
    ) -> None:
        opts = [
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
            *options,
        ]
        if credentials is None and (tls_ca_file or tls_cert_file or tls_key_file):
            credentials = tls_credentials(tls_ca_file, tls_cert_file, tls_key_file)
        if credentials is None:
            self._channel = grpc.insecure_channel(address, options=opts)
        else:
            self._channel = grpc.secure_channel(address, credentials, options=opts)
        if token is not None:
            # First, so the caller's interceptors see the call as it will be sent.
            interceptors = (TokenInterceptor(token), *interceptors)
        channel = grpc.intercept_channel(self._channel, *interceptors) if interceptors else self._channel
        self.address = address
        self.timeout = timeout
        self.kv = kv_pb2_grpc.KeyValueServiceStub(channel)
        self.locks = lock_pb2_grpc.LockServiceStub(channel)
        self.events = event_pb2_grpc.EventServiceStub(channel)
        #: StoreService (JSON items under paths: LangGraph's BaseStore, see
        #: clients/python-langgraph), on the same channel; no helpers here.
        self.store = store_pb2_grpc.StoreServiceStub(channel)
        #: CheckpointService (LangGraph checkpoints, see clients/python-langgraph), on the same channel.
        self.checkpoints = checkpoint_pb2_grpc.CheckpointServiceStub(channel)
        self._subscriptions: "weakref.WeakSet[Subscription]" = weakref.WeakSet()

    def close(self) -> None:
        """End every subscription made here (their loops stop without an
        error) and close the channel; other calls in flight fail."""
        for sub in list(self._subscriptions):
            sub.close()
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _t(self, timeout: Optional[float]) -> float:
        return self.timeout if timeout is None else timeout

    # Key-value RPCs -----------------------------------------------------

    def get(
        self, namespace: str, key: str, *, consistency: int = 0, timeout: Optional[float] = None
    ) -> kv_pb2.GetResponse:
        """Read one key. A missing or expired key answers ``found=False``."""
        req = kv_pb2.GetRequest(namespace=namespace, key=key, consistency=consistency)
        return self.kv.Get(req, timeout=self._t(timeout))

    def compare_and_set(
        self,
        namespace: str,
        key: str,
        value: Value,
        *,
        expected: Expected = ANY,
        content_type: str = "",
        ttl: Optional[Seconds] = None,
        idempotency_key: str = "",
        fence: Optional[common_pb2.Fence] = None,
        timeout: Optional[float] = None,
    ) -> kv_pb2.CompareAndSetResponse:
        """Write a key if ``expected`` holds (a version, ANY or ABSENT). A
        mismatch answers ``applied=False`` with the current item."""
        req = kv_pb2.CompareAndSetRequest(
            namespace=namespace,
            key=key,
            expected=_expected(expected),
            value=_bytes(value),
            content_type=content_type,
            ttl=_duration(ttl) if ttl is not None else None,
            idempotency_key=idempotency_key,
            fence=fence,
        )
        return self.kv.CompareAndSet(req, timeout=self._t(timeout))

    def delete(
        self,
        namespace: str,
        key: str,
        *,
        expected: Expected = ANY,
        idempotency_key: str = "",
        fence: Optional[common_pb2.Fence] = None,
        timeout: Optional[float] = None,
    ) -> kv_pb2.DeleteResponse:
        """Remove a key if ``expected`` holds, with the same compare semantics."""
        req = kv_pb2.DeleteRequest(
            namespace=namespace,
            key=key,
            expected=_expected(expected),
            idempotency_key=idempotency_key,
            fence=fence,
        )
        return self.kv.Delete(req, timeout=self._t(timeout))

    def list(
        self,
        namespace: str,
        prefix: str = "",
        *,
        limit: int = 0,
        page_token: str = "",
        include_values: bool = False,
        timeout: Optional[float] = None,
    ) -> kv_pb2.ListResponse:
        """One page of keys under ``prefix``, in byte order; pass
        ``next_page_token`` back as ``page_token`` for the next page."""
        req = kv_pb2.ListRequest(
            namespace=namespace, prefix=prefix, limit=limit, page_token=page_token, include_values=include_values
        )
        return self.kv.List(req, timeout=self._t(timeout))

    # Lock RPCs ----------------------------------------------------------

    def acquire_lock(
        self,
        namespace: str,
        name: str,
        *,
        ttl: Seconds,
        wait: Seconds = 0,
        owner: str = "",
        timeout: Optional[float] = None,
    ) -> lock_pb2.LockResponse:
        """The Lock RPC: try to acquire, waiting up to ``wait``. Not acquired is
        not an error (``acquired=False``, ``holder_owner``). The deadline
        defaults to ``wait`` plus the client's timeout. See :meth:`lock` for
        the context manager that also renews and releases."""
        req = lock_pb2.LockRequest(
            namespace=namespace, name=name, ttl=_duration(ttl), wait=_duration(wait), owner=owner
        )
        return self.locks.Lock(req, timeout=timeout if timeout is not None else _seconds(wait) + self.timeout)

    def unlock(
        self, namespace: str, name: str, lock_id: str, *, timeout: Optional[float] = None
    ) -> lock_pb2.UnlockResponse:
        """Release a lock held under ``lock_id``; a lock not held answers
        FAILED_PRECONDITION (``agentstate-reason: LOCK_NOT_HELD``)."""
        req = lock_pb2.UnlockRequest(namespace=namespace, name=name, lock_id=lock_id)
        return self.locks.Unlock(req, timeout=self._t(timeout))

    def renew_lock(
        self, namespace: str, name: str, lock_id: str, *, ttl: Seconds, timeout: Optional[float] = None
    ) -> lock_pb2.RenewLockResponse:
        """Extend a lock held under ``lock_id`` to ``ttl`` from now."""
        req = lock_pb2.RenewLockRequest(namespace=namespace, name=name, lock_id=lock_id, ttl=_duration(ttl))
        return self.locks.RenewLock(req, timeout=self._t(timeout))

    def lock(
        self,
        namespace: str,
        name: str,
        *,
        ttl: Seconds = 15.0,
        wait: Seconds = 30.0,
        owner: str = "",
        renew_every: Optional[Seconds] = None,
    ) -> Lock:
        """A lock to use as a context manager::

            with client.lock("ns", "orders", ttl=10) as held:
                client.put("ns", "orders/1", b"...", fence=held.fence)

        Entering acquires (waiting up to ``wait``, else :class:`LockNotAcquired`)
        and starts a thread that renews every ``renew_every`` (default ttl/3);
        leaving stops it and releases. If a renewal fails, ``held.lost`` is set
        and leaving raises :class:`LockLost`; long bodies should check
        ``held.lost`` (or call ``held.check()``) between steps.
        """
        every = None if renew_every is None else _seconds(renew_every)
        return Lock(self, namespace, name, ttl=_seconds(ttl), wait=_seconds(wait), owner=owner, renew_every=every)

    # Helpers ------------------------------------------------------------

    def _retry(self, call: Callable[[], T], retries: int, backoff: Backoff) -> T:
        n = 0
        while True:
            try:
                return call()
            except grpc.RpcError as e:
                if not is_retryable(e) or n >= retries:
                    raise
                n += 1
                time.sleep(backoff.delay(n))

    def put(
        self,
        namespace: str,
        key: str,
        value: Value,
        *,
        expected: Expected = ANY,
        content_type: str = "",
        ttl: Optional[Seconds] = None,
        fence: Optional[common_pb2.Fence] = None,
        idempotency_key: Optional[str] = None,
        retries: int = 3,
        backoff: Backoff = Backoff(0.1, 2.0),
        timeout: Optional[float] = None,
    ) -> kv_pb2.CompareAndSetResponse:
        """Write ``value`` under one idempotency key (generated unless given),
        retrying the very same request after UNAVAILABLE or DEADLINE_EXCEEDED.
        The server applies a key's request at most once and replays its first
        outcome (``replayed=True``) to every retry: a write whose reply was lost
        is neither lost nor doubled. Each attempt has its own deadline."""
        key_ = idempotency_key or new_idempotency_key()
        return self._retry(
            lambda: self.compare_and_set(
                namespace,
                key,
                value,
                expected=expected,
                content_type=content_type,
                ttl=ttl,
                idempotency_key=key_,
                fence=fence,
                timeout=timeout,
            ),
            retries,
            backoff,
        )

    def update(
        self,
        namespace: str,
        key: str,
        fn: UpdateFn,
        *,
        content_type: str = "",
        ttl: Optional[Seconds] = None,
        fence: Optional[common_pb2.Fence] = None,
        max_attempts: int = 100,
        backoff: Backoff = Backoff(0.01, 1.0),
        consistency: int = 0,
        timeout: Optional[float] = None,
    ) -> UpdateResult:
        """Apply ``fn`` to a key atomically and return the outcome.

        Reads the key, writes ``fn(current_item_or_None)`` with compare-and-set
        on the version read (or on absence); when another writer got there
        first, calls ``fn`` again on the current item that the failed
        compare-and-set returned (no second read), after a jittered backoff.
        So no update is lost or applied to a stale value. ``fn`` may run more
        than once and must not have side effects it cannot repeat; returning
        None aborts without writing. Each attempt carries its own idempotency
        key, so an attempt whose reply is lost is retried as the same request
        and applies at most once. ``content_type`` empty keeps the current one;
        ``ttl`` None writes a value without expiry. Raises
        :class:`UpdateConflict` after ``max_attempts`` mismatches.
        """
        transient = Backoff(0.1, 2.0)
        got = self._retry(lambda: self.get(namespace, key, consistency=consistency, timeout=timeout), 3, transient)
        current: Optional[common_pb2.Item] = got.item if got.found else None
        revision = got.header.revision
        attempt = 0
        while True:
            value = fn(current)
            if value is None:
                return UpdateResult(applied=False, item=current, revision=revision, attempts=attempt)
            attempt += 1
            ikey = new_idempotency_key()
            res = self._retry(
                lambda: self.compare_and_set(
                    namespace,
                    key,
                    value,
                    expected=ABSENT if current is None else current.version,
                    content_type=content_type or (current.content_type if current is not None else ""),
                    ttl=ttl,
                    idempotency_key=ikey,
                    fence=fence,
                    timeout=timeout,
                ),
                3,
                transient,
            )
            if res.applied:
                return UpdateResult(applied=True, item=res.item, revision=res.header.revision, attempts=attempt)
            if attempt >= max_attempts:
                raise UpdateConflict(f"update of {namespace}/{key} gave up after {attempt} conflicting attempts")
            # The mismatch reply carries the current state: retry on it directly.
            current = res.item if res.found else None
            revision = res.header.revision
            time.sleep(backoff.delay(attempt))

    # Event RPCs ---------------------------------------------------------

    def append_event(
        self,
        namespace: str,
        stream: str,
        events: Iterable[Union[NewEvent, event_pb2.EventData]],
        expected: ExpectedVersion,
        *,
        fence: Optional[common_pb2.Fence] = None,
        retries: int = 3,
        backoff: Backoff = Backoff(0.1, 2.0),
        timeout: Optional[float] = None,
    ) -> AppendResult:
        """Append ``events`` (:class:`NewEvent` or ``EventData``) to a stream
        atomically if ``expected`` holds: ``ANY``, ``NO_STREAM``, ``EXISTS`` or
        the stream's current version. A mismatch is not an error:
        ``applied=False`` with the stream's ``current_version``.

        Events without an id get a UUIDv4 here, once per call, and the very
        same request is retried after UNAVAILABLE or DEADLINE_EXCEEDED (each
        attempt with its own deadline). The server appends an id at most once,
        so an append whose reply was lost is replayed (``replayed=True``, the
        original positions) instead of written twice. ``event_ids`` are the ids
        sent, in order."""
        req = event_pb2.AppendEventRequest(
            namespace=namespace,
            stream=stream,
            expected=expected_stream(expected),
            events=event_data(events),
            fence=fence,
        )
        res = self._retry(lambda: self.events.AppendEvent(req, timeout=self._t(timeout)), retries, backoff)
        return AppendResult(
            applied=res.applied,
            replayed=res.replayed,
            current_version=res.current_version,
            first_version=res.first_version,
            position=res.position,
            revision=res.header.revision,
            event_ids=tuple(e.id for e in req.events),
        )

    def read_stream(
        self,
        namespace: str,
        stream: str,
        *,
        direction: Union[str, int] = "forwards",
        from_version: int = 0,
        limit: int = 0,
        timeout: Optional[float] = None,
    ) -> Iterator[event_pb2.RecordedEvent]:
        """A generator of a stream's events: oldest first, or newest first with
        ``direction="backwards"``; from ``from_version`` (inclusive; 0: the
        start, or the end backwards); at most ``limit`` (0: all). The call
        starts at the first ``next()`` and has one deadline for the whole read
        (``timeout``, default the client's). The server pages from Postgres and
        waits for the reader; a reader that stops for longer than the server's
        stall limit gets RESOURCE_EXHAUSTED. A stream without events raises
        NOT_FOUND. Closing the generator (or leaving a ``for`` loop over it
        early, once it is collected) cancels the call."""
        req = event_pb2.ReadStreamRequest(
            namespace=namespace,
            stream=stream,
            direction=_direction(direction),
            from_version=from_version,
            limit=limit,
        )
        call = self.events.ReadStream(req, timeout=self._t(timeout))
        try:
            for res in call:
                yield res.event
        finally:
            call.cancel()

    def subscribe(
        self,
        namespace: str,
        *,
        stream: Optional[str] = None,
        stream_prefix: Optional[str] = None,
        after_position: int = 0,
        backoff: Backoff = Backoff(0.1, 5.0),
        max_reconnects: Optional[int] = None,
        on_reconnect: Optional[Callable[[ReconnectInfo], None]] = None,
    ) -> Subscription:
        """Subscribe to one ``stream`` or to every stream under
        ``stream_prefix`` (``""``: all): events with a position above
        ``after_position`` (catch-up), one ``CaughtUp``, then live events, in
        position order. The :class:`Subscription` is an iterator that
        resubscribes from the last position it delivered when the stream breaks
        (server shutdown, connection loss, RESOURCE_EXHAUSTED after a stall),
        after a jittered ``backoff`` (reset once a connection delivers), so it
        never skips or repeats an event, until ``close()``. It has no deadline.
        ``max_reconnects`` (default unlimited) bounds consecutive failed
        connections; ``on_reconnect`` is told about each resubscription."""
        sub = Subscription(
            lambda req: self.events.Subscribe(req),
            namespace,
            stream=stream,
            stream_prefix=stream_prefix,
            after_position=after_position,
            backoff=backoff,
            max_reconnects=max_reconnects,
            on_reconnect=on_reconnect,
        )
        self._subscriptions.add(sub)
        return sub
