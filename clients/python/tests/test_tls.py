"""TLS and mTLS against the mTLS + auth server .ci/clients starts:
AGENTSTATE_MTLS_ADDRESS, with the CA and a client certificate in
AGENTSTATE_TLS_CA_FILE, AGENTSTATE_TLS_CLIENT_CERT_FILE and
AGENTSTATE_TLS_CLIENT_KEY_FILE, and an admin token in AGENTSTATE_MTLS_TOKEN."""

import os

import grpc
import pytest

from agentstate import ANY, Client, NewEvent, tls_credentials

ADDRESS = os.environ.get("AGENTSTATE_MTLS_ADDRESS")
TOKEN = os.environ.get("AGENTSTATE_MTLS_TOKEN")
pytestmark = pytest.mark.skipif(not ADDRESS, reason="AGENTSTATE_MTLS_ADDRESS is not set (see .ci/clients)")


def _get(client: Client) -> None:
    client.get("py-tls", "k")


def _mtls(**kw: object) -> Client:
    return Client(
        ADDRESS or "",
        timeout=5,
        tls_ca_file=os.environ["AGENTSTATE_TLS_CA_FILE"],
        tls_cert_file=os.environ["AGENTSTATE_TLS_CLIENT_CERT_FILE"],
        tls_key_file=os.environ["AGENTSTATE_TLS_CLIENT_KEY_FILE"],
        **kw,  # type: ignore[arg-type]
    )


def test_ca_and_client_certificate_work() -> None:
    with _mtls(token=TOKEN) as client:
        _get(client)


@pytest.mark.skipif(not TOKEN, reason="AGENTSTATE_MTLS_TOKEN is not set")
def test_auth_without_a_token_is_unauthenticated_and_a_token_source_is_asked_every_call() -> None:
    with _mtls() as client:
        with pytest.raises(grpc.RpcError) as err:
            _get(client)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    asked = []

    def source() -> str:
        asked.append(1)
        return TOKEN or ""

    with _mtls(token=source) as client:
        _get(client)
        client.put("py-tls", "k", b"v")
        client.append_event("py-tls", "s", [NewEvent(type="t", data=b"e")], ANY)
        assert len(list(client.read_stream("py-tls", "s"))) >= 1  # a server stream carries it too
    assert len(asked) >= 4


def test_without_a_client_certificate_the_handshake_fails() -> None:
    creds = tls_credentials(os.environ["AGENTSTATE_TLS_CA_FILE"])
    with Client(ADDRESS or "", timeout=5, credentials=creds) as client:
        with pytest.raises(grpc.RpcError) as err:
            _get(client)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_plaintext_fails() -> None:
    with Client(ADDRESS or "", timeout=5) as client:
        with pytest.raises(grpc.RpcError) as err:
            _get(client)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_certificate_and_key_go_together() -> None:
    with pytest.raises(ValueError):
        tls_credentials(None, "cert.pem", None)
