"""A `DeltaChannel` thread (values rebuilt from ancestors' writes) migrates whole: the target
rebuilds every state, gives the same delta history, and the run continues there."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

import pytest

from checkpoint_base._migrate import migrate, verify
from checkpoint_base.testing.targets import Target

from .conftest import TARGETS, one_per_backend

delta_tests = pytest.importorskip(
    "tests.conformance.test_graph_delta", reason="this LangGraph has no DeltaChannel"
)
counting_graph = delta_tests.counting_graph
run_config = delta_tests.run_config

FAMILIES = [t for t in one_per_backend(TARGETS) if t.open_sync is not None]
OFFICIAL = [t for t in FAMILIES if t.backend in ("sqlite", "postgres")]


def _states(saver: Any, config: Any) -> list[tuple[Any, Any]]:
    graph = counting_graph().compile(checkpointer=saver)
    return [(s.config, s.values) for s in graph.get_state_history(config)]


def _run_and_compare(source: Any, target: Any) -> None:
    config = run_config("delta-migrated")
    graph = counting_graph().compile(checkpointer=source)
    graph.invoke({"items": [], "n": 0, "stop": 17}, config)
    graph.invoke({"stop": 24}, config)
    stored = list(source.list(config))
    assert any("items" not in t.checkpoint["channel_values"] for t in stored), "no deltas stored"

    migrate(source, target)
    assert verify(source, target).ok
    assert _states(target, config) == _states(source, config)
    head = source.get_tuple(config)
    assert head is not None
    want = source.get_delta_channel_history(config=head.config, channels=["items"])
    got = target.get_delta_channel_history(config=head.config, channels=["items"])
    assert got == want
    results = [
        counting_graph().compile(checkpointer=s).invoke({"stop": 30}, config)
        for s in (source, target)
    ]
    assert results[0] == results[1] == {"items": list(range(30)), "n": 30, "stop": 30}


@pytest.mark.parametrize("target_target", FAMILIES, ids=lambda t: t.name)
@pytest.mark.parametrize("source_target", FAMILIES, ids=lambda t: t.name)
def test_delta_channel_thread_between_backends(
    source_target: Target, target_target: Target
) -> None:
    assert source_target.open_sync is not None and target_target.open_sync is not None
    with source_target.open_sync() as source, target_target.open_sync() as target:
        _run_and_compare(source, target)


def _official(target: Target) -> AbstractContextManager[Any]:
    assert target.official_sync is not None
    return target.official_sync()


@pytest.mark.parametrize("official_target", OFFICIAL, ids=lambda t: f"official-{t.backend}")
def test_delta_channel_thread_from_and_to_official_storage(official_target: Target) -> None:
    memory = FAMILIES[0]
    assert memory.open_sync is not None
    with _official(official_target) as official, memory.open_sync() as ours:
        _run_and_compare(official, ours)
    with memory.open_sync() as ours, _official(official_target) as official:
        _run_and_compare(ours, official)
