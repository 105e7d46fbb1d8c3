"""`keep_last` with `DeltaChannel` graphs: time travel, forks with new input and
`update_state` on a thread trimmed as it goes must rebuild every value a run without
`keep_last` has, in every durability."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph

from checkpoint_base import MemorySaver, PrunedHistoryError

from .graphs import new_thread
from .harness import Harness
from .test_graph_delta import DeltaChannel, extend, run_config


@pytest.fixture
def keep(h: Harness) -> Iterator[Harness]:
    before = h.saver.keep_last
    yield h
    h.saver.keep_last = before


class TwoDeltas(TypedDict):
    items: Annotated[list[int], DeltaChannel(extend, snapshot_frequency=5)]
    tags: Annotated[list[int], DeltaChannel(extend, snapshot_frequency=2)]
    n: int
    stop: int


def two_deltas_graph() -> StateGraph[Any]:
    """Loops: `items` gets every n, `tags` every third n (a channel that often stays)."""

    def step(state: TwoDeltas) -> dict[str, Any]:
        n = state.get("n", 0)
        out: dict[str, Any] = {"items": [n], "n": n + 1}
        if n % 3 == 0:
            out["tags"] = [n]
        return out

    def again(state: TwoDeltas) -> str:
        return "step" if state["n"] < state["stop"] else END

    builder = StateGraph(TwoDeltas)
    builder.add_node("step", step)
    builder.add_edge(START, "step")
    builder.add_conditional_edges("step", again, ["step", END])
    return builder


async def _delta_run(h: Harness, keep_last: int | None, durability: str, n: int) -> Any:
    """The run with `keep_last`, observed as one with `keep_last=n` can be: its `n` newest
    checkpoints, time travel to the newest or the one before it."""
    h.saver.keep_last = keep_last
    graph = two_deltas_graph().compile(checkpointer=h.saver)
    thread = new_thread()
    cfg = run_config(thread)
    trace: list[Any] = []

    async def observe() -> list[Any]:
        fresh = two_deltas_graph().compile(checkpointer=h.saver)
        # The newest n are the same checkpoints as the reference's.
        history = await h.state_history(fresh, cfg, limit=n)
        trace.append((await h.get_state(fresh, cfg)).values)
        trace.append([(s.metadata["step"], s.metadata["source"], s.values) for s in history])
        return history

    start = {"items": [], "tags": [], "n": 0, "stop": 12}
    trace.append(await h.invoke(graph, start, cfg, durability=durability))
    for fork in range(2):
        history = await observe()
        # Time travel to a kept checkpoint (the oldest of the newest keep_last) and go on.
        target = history[min(n, 2, len(history)) - 1].config
        trace.append(await h.invoke(graph, None, target, durability=durability))
        history = await observe()
        # A fork with new input from a checkpoint kept now, then an update of the latest.
        target = history[min(n, 2, len(history)) - 1].config
        trace.append(await h.invoke(graph, {"stop": 16 + 3 * fork}, target, durability=durability))
        await observe()
        await h.update_state(graph, cfg, {"items": [100 + fork], "tags": [200 + fork]})
        await observe()
        trace.append(await h.invoke(graph, {"stop": 20 + 3 * fork}, cfg, durability=durability))
        await observe()
    return trace


@pytest.mark.parametrize("durability", ["sync", "async", "exit"])
async def test_delta_forks_match_a_run_without_keep_last(keep: Harness, durability: str) -> None:
    h = keep
    for n in (1, 2, 3):
        reference = await _delta_run(h, None, durability, n)
        final = reference[-2]
        assert 101 in final["items"] and 201 in final["tags"], final
        assert await _delta_run(h, n, durability, n) == reference, n


async def test_a_newest_checkpoint_whose_parent_is_on_another_chain_rebuilds(
    keep: Harness,
) -> None:
    """An update forks from the checkpoint before the head: the two newest share a parent.
    The fork stores `items` and needs ancestors for `tags` only; the head needs them for
    `items`, further back. Keeping the shared parent for the fork's chain must not stop the
    trim from keeping the head's."""
    h = keep
    h.saver.keep_last = 2
    graph = two_deltas_graph().compile(checkpointer=h.saver)
    cfg = run_config(new_thread())
    await h.invoke(graph, {"items": [], "tags": [], "n": 0, "stop": 17}, cfg)
    head, before = (await h.state_history(graph, cfg))[:2]
    assert head.values == {
        "items": list(range(17)),
        "tags": [0, 3, 6, 9, 12, 15],
        "n": 17,
        "stop": 17,
    }
    await h.update_state(graph, before.config, {"n": 50})
    fresh = two_deltas_graph().compile(checkpointer=h.saver)
    assert (await h.get_state(fresh, head.config)).values == head.values
    newest = (await h.state_history(fresh, cfg))[:2]
    assert [s.values["n"] for s in newest] == [50, 17]
    assert newest[0].values["items"] == list(range(16))
    assert newest[1].values == head.values
    result = await h.invoke(fresh, {"stop": 19}, head.config)
    assert result["items"] == list(range(19))


async def test_history_past_the_kept_checkpoints_is_right_or_refused(keep: Harness) -> None:
    """Checkpoints kept only as a delta chain's ancestors may have another delta channel
    whose own chain was cut: reading them must give the value a run without retention has,
    or raise PrunedHistoryError; never a value folded onto an empty start."""
    h = keep
    thread = new_thread()
    cfg = run_config(thread)
    reference = two_deltas_graph().compile(checkpointer=MemorySaver())
    h.saver.keep_last = 1
    graph = two_deltas_graph().compile(checkpointer=h.saver)
    await h.invoke(graph, {"items": [], "tags": [], "n": 0, "stop": 24}, cfg)
    reference.invoke({"items": [], "tags": [], "n": 0, "stop": 24}, cfg)
    expected = {s.metadata["step"]: s.values for s in reference.get_state_history(cfg)}
    kept = await h.list({"configurable": {"thread_id": thread}})
    assert 1 < len(kept) < 24  # the newest and its chains, not the whole run
    refused: list[str] = []
    for t in kept:
        at = {**cfg, "configurable": {**t.config["configurable"]}}
        try:
            state = await h.get_state(graph, at)
        except PrunedHistoryError as exc:
            refused.append(str(exc))
            continue
        assert state.values == expected[t.metadata["step"]], t.metadata["step"]
    assert all(thread in m and "was deleted" in m for m in refused)
    newest = await h.get_state(graph, cfg)
    assert newest.values == reference.get_state(cfg).values
    # At 24 steps the newest keeps an ancestor whose `items` reach past the kept ones.
    assert 0 < len(refused) < len(kept)
