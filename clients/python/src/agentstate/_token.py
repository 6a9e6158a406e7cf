"""Bearer credentials for a server with AGENTSTATE_AUTH=required: a fixed
token, or a token source called before every call (refreshable JWTs: the
source caches and refreshes on its own). Sent as ``authorization: Bearer ...``
by a client interceptor, so they work over TLS and over plaintext on
loopback alike."""

from __future__ import annotations

from typing import Any, Callable, Union

import grpc

TokenSource = Union[str, Callable[[], str]]


class _Details(grpc.ClientCallDetails):  # type: ignore[misc]
    def __init__(self, base: grpc.ClientCallDetails, metadata: Any) -> None:
        self.method = base.method
        self.timeout = base.timeout
        self.metadata = metadata
        self.credentials = base.credentials
        self.wait_for_ready = getattr(base, "wait_for_ready", None)
        self.compression = getattr(base, "compression", None)


class TokenInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):  # type: ignore[misc]
    """Adds ``authorization: Bearer <token>`` to every unary and server-streaming call."""

    def __init__(self, source: TokenSource) -> None:
        self._source = source

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        token = self._source if isinstance(self._source, str) else self._source()
        metadata = [(k, v) for k, v in (details.metadata or ()) if k != "authorization"]
        metadata.append(("authorization", f"Bearer {token}"))
        return _Details(details, metadata)

    def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return continuation(self._details(client_call_details), request)
