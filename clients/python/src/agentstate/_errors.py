"""Errors raised by the helpers. RPC failures are grpc.RpcError as received."""

from __future__ import annotations


class AgentstateError(Exception):
    """Base class of the errors the helpers raise themselves."""


class UpdateConflict(AgentstateError):
    """:meth:`Client.update` ran out of attempts because other writers kept
    changing the key first. Nothing was written."""


class LockNotAcquired(AgentstateError):
    """The lock stayed held by someone else for the whole wait."""

    def __init__(self, namespace: str, name: str, holder_owner: str) -> None:
        held = f" (held by {holder_owner!r})" if holder_owner else ""
        super().__init__(f"lock {namespace}/{name} not acquired{held}")
        self.namespace = namespace
        self.name = name
        self.holder_owner = holder_owner


class LockLost(AgentstateError):
    """The lock could not be renewed: it expired, was released or taken over,
    or the server was unreachable until it would have expired. Writes fenced
    with its token are refused once a newer holder exists."""
