"""The live server these tests run against: AGENTSTATE_ADDRESS (host:port), as
.ci/clients sets it. Without it the tests are skipped, saying why. Each test
gets an agentstate namespace of its own, so runs never see each other's items."""

from __future__ import annotations

import os
import secrets
from typing import Iterator

import pytest

from agentstate import Client


@pytest.fixture(scope="session")
def address() -> str:
    given = os.environ.get("AGENTSTATE_ADDRESS")
    if not given:
        pytest.skip("AGENTSTATE_ADDRESS is not set: start a server (npm start) and export its address")
    return given


@pytest.fixture(scope="session")
def client(address: str) -> Iterator[Client]:
    with Client(address) as c:
        yield c


@pytest.fixture
def namespace() -> str:
    return f"lg-{secrets.token_hex(6)}"
