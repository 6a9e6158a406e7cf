"""LangGraph's own conformance suite (langgraph-checkpoint-conformance) against
AgentstateSaver on a live server: every base capability (put, put_writes,
get_tuple, list, delete_thread) and the optional ones (delete_for_runs,
copy_thread, prune). Each capability suite gets a fresh saver on a fresh
agentstate namespace, as the suite asks of a checkpointer."""

from __future__ import annotations

import secrets

import pytest

from agentstate import Client
from langgraph.checkpoint.agentstate import AgentstateSaver
from langgraph.checkpoint.conformance import checkpointer_test, validate

OPTIONAL = ("delete_for_runs", "copy_thread", "prune")


async def _run(address: str, strict: bool):
    @checkpointer_test(name=f"AgentstateSaver(strict={strict})")
    async def agentstate_saver():
        with Client(address) as client:
            yield AgentstateSaver(client, f"lg-conf-{secrets.token_hex(6)}", strict=strict)

    report = await validate(agentstate_saver)
    report.print_report()
    failures = {
        cap: [str(f) for f in result.failures] for cap, result in report.results.items() if result.passed is not True
    }
    return report, failures


async def test_conformance_forks_allowed(address: str) -> None:
    """strict=False: the whole suite passes, base and optional capabilities."""
    report, failures = await _run(address, strict=False)
    assert report.passed_all_base(), failures
    for cap in OPTIONAL:
        assert report.results[cap].detected and report.results[cap].passed, (cap, failures)


async def test_conformance_strict(address: str) -> None:
    """strict=True (the default): the suite passes except where a test writes
    a second parentless checkpoint on a thread that already has one, which is
    a fork of the chain and which strict mode refuses by design
    (CheckpointConflict): nothing else fails."""
    report, failures = await _run(address, strict=True)
    counted = {cap: r.tests_passed + r.tests_failed for cap, r in report.results.items()}
    assert all(n > 0 for n in counted.values()), counted
    for cap, msgs in failures.items():
        for msg in msgs:
            assert "checkpoint conflict" in msg and "the put's parent is None" in msg, (cap, msg)
