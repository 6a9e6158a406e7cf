"""Lock: a held agentstate lock as a context manager, renewed from a thread."""

from __future__ import annotations

import threading
import time
from typing import Optional, Protocol

import grpc

from ._errors import LockLost, LockNotAcquired
from .v1 import common_pb2, lock_pb2


class LockRpcs(Protocol):
    """What a :class:`Lock` needs from a client: the three lock RPCs and the
    default deadline. :class:`Client` is one; declaring it here keeps this
    module free of an import of ``_client`` (which imports this one)."""

    timeout: float

    def acquire_lock(
        self, namespace: str, name: str, *, ttl: float, wait: float = 0, owner: str = ""
    ) -> lock_pb2.LockResponse: ...

    def unlock(self, namespace: str, name: str, lock_id: str) -> lock_pb2.UnlockResponse: ...

    def renew_lock(
        self, namespace: str, name: str, lock_id: str, *, ttl: float, timeout: Optional[float] = None
    ) -> lock_pb2.RenewLockResponse: ...


class Lock:
    """One acquisition of a named lock; made by :meth:`Client.lock`.

    ``with client.lock(ns, name) as held:`` acquires, renews every
    ``renew_every`` seconds from a daemon thread, and releases on exit. Pass
    ``held.fence`` with every write made under the lock (in its namespace):
    the server refuses it once a newer holder exists. If a renewal fails the
    lock may be gone: ``held.lost`` is set, ``held.check()`` raises
    :class:`LockLost`, and so does leaving the block (unless it is already
    raising). ``acquire()`` and ``release()`` can also be called directly.
    """

    def __init__(
        self,
        client: LockRpcs,
        namespace: str,
        name: str,
        *,
        ttl: float,
        wait: float,
        owner: str,
        renew_every: Optional[float],
    ) -> None:
        self._client = client
        self.namespace = namespace
        self.name = name
        self.ttl = ttl
        self.wait = max(wait, 0.0)
        self.owner = owner
        self.renew_every = renew_every if renew_every is not None else ttl / 3
        #: Set when the lock could not be renewed (see :class:`LockLost`).
        self.lost = threading.Event()
        self.lost_reason: Optional[BaseException] = None
        self.lock_id = ""
        #: The fencing token: greater than every token issued before for this name.
        self.token = 0
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    @property
    def fence(self) -> common_pb2.Fence:
        """The fence to pass with writes made under this lock."""
        return common_pb2.Fence(lock_name=self.name, token=self.token)

    def check(self) -> None:
        """Raise :class:`LockLost` if the lock could not be renewed."""
        if self.lost.is_set():
            raise LockLost(f"lock {self.namespace}/{self.name} (token {self.token}) lost") from self.lost_reason

    def acquire(self) -> "Lock":
        if self._thread is not None:
            raise RuntimeError("lock already acquired")
        # The lock is ours for at most ttl from when we asked: a local,
        # conservative bound that needs no clock agreement with the server.
        sent = time.monotonic()
        res = self._client.acquire_lock(self.namespace, self.name, ttl=self.ttl, wait=self.wait, owner=self.owner)
        if not res.acquired:
            raise LockNotAcquired(self.namespace, self.name, res.holder_owner)
        self.lock_id = res.lock_id
        self.token = res.fencing_token
        self._stop.clear()
        self.lost.clear()
        self._thread = threading.Thread(
            target=self._renew, args=(sent + self.ttl,), name=f"agentstate-lock-{self.name}", daemon=True
        )
        self._thread.start()
        return self

    def release(self) -> None:
        """Stop renewing and release; best effort (an unreleased lock expires)."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        try:
            self._client.unlock(self.namespace, self.name, self.lock_id)
        except grpc.RpcError:
            pass

    def __enter__(self) -> "Lock":
        return self.acquire()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.release()
        if exc_type is None:
            self.check()

    def _renew(self, valid_until: float) -> None:
        delay = self.renew_every
        while not self._stop.wait(delay):
            sent = time.monotonic()
            try:
                self._client.renew_lock(
                    self.namespace,
                    self.name,
                    self.lock_id,
                    ttl=self.ttl,
                    timeout=max(min(self._client.timeout, valid_until - sent), 0.001),
                )
            except grpc.RpcError as e:
                if e.code() == grpc.StatusCode.FAILED_PRECONDITION or time.monotonic() >= valid_until:
                    self.lost_reason = e
                    self.lost.set()
                    return
                # Transient: try again soon, while the lock may still be ours.
                delay = min(max(self.renew_every / 4, 0.01), max(valid_until - time.monotonic(), 0.0))
                continue
            valid_until = sent + self.ttl
            delay = self.renew_every
