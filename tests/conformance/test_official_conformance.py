"""LangGraph's own `langgraph-checkpoint-conformance` suite, on every target and flavor."""

from __future__ import annotations

from collections.abc import AsyncIterator

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import (
    BASE_CAPABILITIES,
    EXTENDED_CAPABILITIES,
)

from .harness import Harness
from .sync_as_async import SyncAsAsync


async def test_official_conformance_suite(h: Harness) -> None:
    saver: BaseCheckpointSaver[str] = h.saver if h.is_async else SyncAsAsync(h.saver)

    @checkpointer_test(name=f"{h.target.name}-{h.flavor}")
    async def factory() -> AsyncIterator[BaseCheckpointSaver[str]]:
        yield saver

    report = await validate(factory)
    required = {cap.value for cap in BASE_CAPABILITIES | EXTENDED_CAPABILITIES}
    problems = {
        name: (result.passed, result.failures)
        for name, result in report.results.items()
        if name in required and result.passed is not True
    }
    assert set(report.results) >= required, (
        f"capabilities not run: {required - set(report.results)}"
    )
    assert not problems, f"official conformance failures: {problems}"
    ran = sum(report.results[name].tests_passed for name in required)
    assert ran >= 70, f"only {ran} official tests ran"
