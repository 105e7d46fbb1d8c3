"""`get_state_history`, time travel and forks of real graphs."""

from __future__ import annotations

from importlib import metadata
from typing import Any

from packaging.version import Version

from .graphs import Runs, checkpoint_id, linear_graph, new_thread, thread_config
from .harness import Harness

# LangGraph 1.1.8 and later begin a replay from an old checkpoint with a copy of it (source
# "fork") and run on from the copy; the LangGraph before ran on from the old checkpoint itself.
_FORKS_ON_REPLAY = Version(metadata.version("langgraph")) >= Version("1.1.8")


def _ids(snapshots: list[Any]) -> list[str]:
    return [checkpoint_id(s.config) for s in snapshots]


def _parent_ids(snapshots: list[Any]) -> list[str | None]:
    return [checkpoint_id(s.parent_config) if s.parent_config else None for s in snapshots]


async def test_graph_state_history_order_and_content(h: Harness) -> None:
    runs = Runs()
    config = thread_config(new_thread())
    graph = linear_graph(runs).compile(checkpointer=h.saver)
    assert await h.invoke(graph, {"log": []}, config) == {"log": ["a1", "b1", "c1"]}

    history = await h.state_history(graph, config)
    assert [s.metadata["step"] for s in history] == [3, 2, 1, 0, -1]
    assert [s.metadata["source"] for s in history] == ["loop"] * 4 + ["input"]
    assert [s.next for s in history] == [(), ("c",), ("b",), ("a",), ("__start__",)]
    assert [s.values.get("log") for s in history] == [
        ["a1", "b1", "c1"],
        ["a1", "b1"],
        ["a1"],
        [],
        [],
    ]
    ids = _ids(history)
    assert ids == sorted(ids, reverse=True)
    assert len(set(ids)) == 5
    # Each checkpoint's parent is the next older one; the oldest has none.
    assert _parent_ids(history) == [*ids[1:], None]
    # The saver lists the same checkpoints in the same order.
    assert [checkpoint_id(t.config) for t in await h.list(config)] == ids

    limited = await h.state_history(graph, config, limit=2)
    assert _ids(limited) == ids[:2]
    older = await h.state_history(graph, config, before=history[1].config)
    assert _ids(older) == ids[2:]
    inputs = await h.state_history(graph, config, filter={"source": "input"})
    assert _ids(inputs) == [ids[-1]]


async def test_graph_time_travel_replays_from_older_checkpoint(h: Harness) -> None:
    runs = Runs()
    config = thread_config(new_thread())
    graph = linear_graph(runs).compile(checkpointer=h.saver)
    await h.invoke(graph, {"log": []}, config)
    original = await h.state_history(graph, config)
    after_a = next(s for s in original if s.next == ("b",))

    result = await h.invoke(graph, None, after_a.config)
    assert result == {"log": ["a1", "b2", "c2"]}
    assert runs.snapshot() == {"a": 1, "b": 2, "c": 2}

    # Replaying from an old checkpoint runs b and c again, after a copy of the old checkpoint
    # (source "fork") on the LangGraph that makes one.
    history = await h.state_history(graph, config)
    new = 3 if _FORKS_ON_REPLAY else 2
    assert len(history) == len(original) + new
    replayed = history[:new]
    assert [s.metadata["source"] for s in replayed] == ["loop", "loop", "fork"][:new]
    assert [s.values["log"] for s in replayed] == [["a1", "b2", "c2"], ["a1", "b2"], ["a1"]][:new]
    assert [s.next for s in replayed] == [(), ("c",), ("b",)][:new]
    assert _parent_ids(replayed) == [*_ids(replayed)[1:], checkpoint_id(after_a.config)]
    # The original checkpoints are untouched and still readable.
    assert _ids(history[new:]) == _ids(original)
    assert [s.values for s in history[new:]] == [s.values for s in original]
    assert _parent_ids(history[new:]) == _parent_ids(original)
    old_final = await h.get_state(graph, original[0].config)
    assert old_final.values == {"log": ["a1", "b1", "c1"]}


async def test_graph_fork_with_update_state(h: Harness) -> None:
    runs = Runs()
    config = thread_config(new_thread())
    graph = linear_graph(runs).compile(checkpointer=h.saver)
    await h.invoke(graph, {"log": []}, config)
    original = await h.state_history(graph, config)
    after_a = next(s for s in original if s.next == ("b",))

    fork_config = await h.update_state(graph, after_a.config, {"log": ["human"]})
    fork = await h.get_state(graph, fork_config)
    assert fork.values == {"log": ["a1", "human"]}
    assert fork.next == ("b",)
    assert fork.metadata["source"] == "update"
    assert fork.parent_config is not None
    assert checkpoint_id(fork.parent_config) == checkpoint_id(after_a.config)
    # The fork is the thread's newest checkpoint, yet the original head still reads the same.
    assert checkpoint_id((await h.get_state(graph, config)).config) == checkpoint_id(fork_config)
    assert (await h.get_state(graph, original[0].config)).values == {"log": ["a1", "b1", "c1"]}

    result = await h.invoke(graph, None, fork_config)
    assert result == {"log": ["a1", "human", "b2", "c2"]}
    assert runs.snapshot() == {"a": 1, "b": 2, "c": 2}

    history = await h.state_history(graph, config)
    original_ids = set(_ids(original))
    branch = [s for s in history if checkpoint_id(s.config) not in original_ids]
    assert [s.values["log"] for s in branch] == [
        ["a1", "human", "b2", "c2"],
        ["a1", "human", "b2"],
        ["a1", "human"],
    ]
    assert _parent_ids(branch) == [*_ids(branch)[1:], checkpoint_id(after_a.config)]
    unchanged = [s for s in history if checkpoint_id(s.config) in original_ids]
    assert _ids(unchanged) == _ids(original)
    assert [s.values for s in unchanged] == [s.values for s in original]
    assert _parent_ids(unchanged) == _parent_ids(original)


async def test_graph_fork_as_node_skips_ahead(h: Harness) -> None:
    runs = Runs()
    config = thread_config(new_thread())
    graph = linear_graph(runs).compile(checkpointer=h.saver)
    await h.invoke(graph, {"log": []}, config)
    original = await h.state_history(graph, config)
    after_a = next(s for s in original if s.next == ("b",))

    # Writing as node "b" makes the fork continue at "c": b never runs on this branch.
    fork_config = await h.update_state(graph, after_a.config, {"log": ["as-b"]}, as_node="b")
    fork = await h.get_state(graph, fork_config)
    assert fork.next == ("c",)
    assert await h.invoke(graph, None, fork_config) == {"log": ["a1", "as-b", "c2"]}
    assert runs.snapshot() == {"a": 1, "b": 1, "c": 2}
