"""agentstate: the Python client of agentstate, shared state for AI agents over gRPC.

Versioned keys with compare-and-set, distributed locks with fencing tokens and
event streams, served by an agentstate server. :class:`Client` wraps the stubs
that grpcio-tools generates from ``proto/`` (the ``agentstate.v1`` package)
with what every caller needs and easily gets wrong:

- every call has a deadline (``timeout``, default 10 s);
- the gRPC message limit matches the server's default, so a value the server
  accepts is never refused by the transport on either side;
- :meth:`Client.update`: a compare-and-set retry loop that never loses an update;
- :meth:`Client.lock`: a context manager that acquires a lock, renews it from a
  background thread, exposes its fencing token and releases it;
- :meth:`Client.put`: one idempotency key per logical write, reused across its
  retries, so a write retried after a timeout takes effect once;
- :meth:`Client.append_event`: event ids generated once per call and re-sent on
  retries, so a retried append is applied once (the server replays it);
- :meth:`Client.read_stream`: a generator over a stream's events;
- :meth:`Client.subscribe`: a :class:`Subscription` that resumes from the last
  position it delivered when the stream breaks, until closed.

Errors are the ``grpc.RpcError`` raised by grpcio (``.code()``, ``.details()``,
``.trailing_metadata()``; ``agentstate-field`` names the bad field of an
INVALID_ARGUMENT). A compare-and-set mismatch is not an error: the reply says
``applied=False`` and carries the current item.
"""

from ._backoff import Backoff
from ._client import (
    ABSENT,
    ANY,
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_TIMEOUT,
    Client,
    UpdateResult,
    is_retryable,
    new_idempotency_key,
    tls_credentials,
)
from ._errors import LockLost, LockNotAcquired, UpdateConflict
from ._events import (
    EXISTS,
    NO_STREAM,
    AppendResult,
    NewEvent,
    ReconnectInfo,
    Subscription,
    is_resumable,
    new_event_id,
)
from ._lock import Lock
from ._token import TokenInterceptor, TokenSource

__all__ = [
    "ABSENT",
    "ANY",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DEFAULT_TIMEOUT",
    "EXISTS",
    "NO_STREAM",
    "AppendResult",
    "Backoff",
    "Client",
    "Lock",
    "LockLost",
    "LockNotAcquired",
    "NewEvent",
    "ReconnectInfo",
    "Subscription",
    "TokenInterceptor",
    "TokenSource",
    "UpdateConflict",
    "UpdateResult",
    "is_resumable",
    "is_retryable",
    "new_event_id",
    "new_idempotency_key",
    "tls_credentials",
]
