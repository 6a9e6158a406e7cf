"""The live server these tests run against.

AGENTSTATE_ADDRESS (host:port) names a running server, as .ci/clients does.
Without it, the session starts one itself: ``node dist/src/main.js`` from the
repository root (run ``npm run build`` first), on a free port, with DATABASE_URL
when set and otherwise the embedded Postgres in a temporary data directory.
If neither is possible the tests are skipped, saying why.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest

from agentstate import Client

REPO_ROOT = Path(__file__).resolve().parents[3]
SERVER_ENTRY = REPO_ROOT / "dist" / "src" / "main.js"


def _start_server(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    log_path = tmp / "server.log"
    env = {**os.environ, "AGENTSTATE_HOST": "127.0.0.1", "AGENTSTATE_PORT": "0", "REDIS_URL": ""}
    if not env.get("DATABASE_URL"):
        env.pop("DATABASE_URL", None)
        env["AGENTSTATE_DATA_DIR"] = str(tmp / "data")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(["node", str(SERVER_ENTRY)], cwd=REPO_ROOT, env=env, stdout=log, stderr=log)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        for line in log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                entry = json.loads(line)
                if entry.get("msg") == "listening":
                    return proc, str(entry["address"])
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.kill()
    proc.wait()
    raise RuntimeError(f"agentstate server did not start:\n{log_path.read_text(errors='replace')[-4000:]}")


@pytest.fixture(scope="session")
def address() -> Iterator[str]:
    given = os.environ.get("AGENTSTATE_ADDRESS")
    if given:
        yield given
        return
    if not SERVER_ENTRY.exists() or shutil.which("node") is None:
        pytest.skip("AGENTSTATE_ADDRESS is not set and dist/src/main.js (npm run build) or node is missing")
    tmp = Path(tempfile.mkdtemp(prefix="agentstate-pytest-"))
    tmp.chmod(0o755)  # the embedded Postgres runs as user postgres when we are root
    proc, addr = _start_server(tmp)
    try:
        yield addr
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def namespace() -> str:
    """One namespace per session, so a shared server can be reused."""
    return f"pytest-{secrets.token_hex(4)}"


@pytest.fixture
def client(address: str) -> Iterator[Client]:
    with Client(address) as c:
        yield c
