"""TLS and mTLS against the mTLS server .ci/clients starts: AGENTSTATE_MTLS_ADDRESS,
with the CA and a client certificate in AGENTSTATE_TLS_CA_FILE,
AGENTSTATE_TLS_CLIENT_CERT_FILE and AGENTSTATE_TLS_CLIENT_KEY_FILE."""

import os

import grpc
import pytest

from agentstate import Client, tls_credentials

ADDRESS = os.environ.get("AGENTSTATE_MTLS_ADDRESS")
pytestmark = pytest.mark.skipif(not ADDRESS, reason="AGENTSTATE_MTLS_ADDRESS is not set (see .ci/clients)")


def _get(client: Client) -> None:
    client.get("py-tls", "k")


def test_ca_and_client_certificate_work() -> None:
    with Client(
        ADDRESS or "",
        timeout=5,
        tls_ca_file=os.environ["AGENTSTATE_TLS_CA_FILE"],
        tls_cert_file=os.environ["AGENTSTATE_TLS_CLIENT_CERT_FILE"],
        tls_key_file=os.environ["AGENTSTATE_TLS_CLIENT_KEY_FILE"],
    ) as client:
        _get(client)


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
