"""Real graphs on several threads: isolation, `copy_thread`, `delete_thread`, `delete_for_runs`."""

from __future__ import annotations

import uuid
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.types import Command

from ..langgraph_limits import skip_async_interrupts
from .graphs import Runs, ask_graph, checkpoint_id, linear_graph, new_thread, thread_config
from .harness import Harness


def run_config(thread_id: str, run_id: str) -> RunnableConfig:
    """LangGraph copies `config["metadata"]` into each checkpoint's metadata.

    That is how a run id reaches the checkpoints (the LangGraph server sets it the same
    way); a top-level `config["run_id"]` only names the callback run and is not stored.
    """
    return {"configurable": {"thread_id": thread_id}, "metadata": {"run_id": run_id}}


def _parent_ids(snapshots: list[Any]) -> list[str | None]:
    return [checkpoint_id(s.parent_config) if s.parent_config else None for s in snapshots]


async def test_graph_threads_are_isolated(h: Harness) -> None:
    runs = Runs()
    graph = linear_graph(runs).compile(checkpointer=h.saver, interrupt_before=["c"])
    threads = {name: new_thread() for name in ("x", "y", "z")}
    configs = {name: thread_config(t) for name, t in threads.items()}

    # Interleave the threads' steps.
    for i, name in enumerate(("x", "y", "z"), start=1):
        result = await h.invoke(graph, {"log": [name]}, configs[name])
        assert result == {"log": [name, f"a{i}", f"b{i}"]}
    assert await h.invoke(graph, None, configs["y"]) == {"log": ["y", "a2", "b2", "c1"]}

    states = {name: await h.get_state(graph, configs[name]) for name in threads}
    assert states["x"].values == {"log": ["x", "a1", "b1"]}
    assert states["x"].next == ("c",)
    assert states["y"].values == {"log": ["y", "a2", "b2", "c1"]}
    assert states["y"].next == ()
    assert states["z"].values == {"log": ["z", "a3", "b3"]}

    seen: set[str] = set()
    for name, thread_id in threads.items():
        listed = await h.list(configs[name])
        assert {t.config["configurable"]["thread_id"] for t in listed} == {thread_id}
        assert len(listed) == (5 if name == "y" else 4)
        ids = {checkpoint_id(t.config) for t in listed}
        assert not ids & seen
        seen |= ids

    await h.delete_thread(threads["y"])
    assert await h.list(configs["y"]) == []
    assert await h.get_tuple(configs["y"]) is None
    assert len(await h.list(configs["x"])) == 4
    assert await h.invoke(graph, None, configs["x"]) == {"log": ["x", "a1", "b1", "c2"]}
    assert (await h.get_state(graph, configs["z"])).values == {"log": ["z", "a3", "b3"]}


async def test_graph_copy_thread_then_continue_both(h: Harness) -> None:
    skip_async_interrupts(h.is_async)
    runs = Runs()
    graph = ask_graph(runs).compile(checkpointer=h.saver)
    source, target = new_thread(), new_thread()
    src, dst = thread_config(source), thread_config(target)
    await h.invoke(graph, {"log": []}, src)
    before = await h.state_history(graph, src)

    await h.copy_thread(source, target)
    copied = await h.state_history(graph, dst)
    assert [checkpoint_id(s.config) for s in copied] == [checkpoint_id(s.config) for s in before]
    assert [s.values for s in copied] == [s.values for s in before]
    assert [s.metadata for s in copied] == [s.metadata for s in before]
    assert {s.config["configurable"]["thread_id"] for s in copied} == {target}
    assert _parent_ids(copied) == _parent_ids(before)
    # The pending interrupt came along: the copy is waiting for its own answer.
    paused = await h.get_state(graph, dst)
    assert paused.next == ("ask",)
    assert [i.value for i in paused.interrupts] == [{"question": "name?"}]

    assert await h.invoke(graph, Command(resume="Ada"), src) == {"log": ["prepare1", "hello Ada"]}
    assert await h.invoke(graph, Command(resume="Bob"), dst) == {"log": ["prepare1", "hello Bob"]}
    assert runs.snapshot() == {"prepare": 1, "ask": 3}

    src_after = await h.state_history(graph, src)
    dst_after = await h.state_history(graph, dst)
    assert len(src_after) == len(dst_after) == len(before) + 1
    assert src_after[0].values["log"][-1] == "hello Ada"
    assert dst_after[0].values["log"][-1] == "hello Bob"
    assert checkpoint_id(src_after[0].config) != checkpoint_id(dst_after[0].config)
    src_ids = {checkpoint_id(s.config) for s in src_after}
    assert checkpoint_id(dst_after[0].config) not in src_ids
    assert [s.values for s in src_after[1:]] == [s.values for s in before]


async def test_graph_delete_for_runs(h: Harness) -> None:
    runs = Runs()
    graph = linear_graph(runs).compile(checkpointer=h.saver)
    thread, other = new_thread(), new_thread()
    first, second, elsewhere = (str(uuid.uuid4()) for _ in range(3))

    await h.invoke(graph, {"log": []}, run_config(thread, first))
    await h.invoke(graph, {"log": ["again"]}, run_config(thread, second))
    await h.invoke(graph, {"log": []}, run_config(other, elsewhere))
    listed = await h.list(thread_config(thread))
    assert [t.metadata["run_id"] for t in listed] == [second] * 5 + [first] * 5
    assert (await h.get_state(graph, thread_config(thread))).values["log"] == [
        "a1", "b1", "c1", "again", "a2", "b2", "c2",
    ]  # fmt: skip

    await h.delete_for_runs([second])
    remaining = await h.list(thread_config(thread))
    assert [t.metadata["run_id"] for t in remaining] == [first] * 5
    assert [checkpoint_id(t.config) for t in remaining] == [
        checkpoint_id(t.config) for t in listed[5:]
    ]
    state = await h.get_state(graph, thread_config(thread))
    assert state.values == {"log": ["a1", "b1", "c1"]}
    assert state.next == ()
    other_listed = await h.list(thread_config(other))
    assert [t.metadata["run_id"] for t in other_listed] == [elsewhere] * 5

    # The thread continues from the last checkpoint the deleted run did not write.
    third = str(uuid.uuid4())
    result = await h.invoke(graph, {"log": ["more"]}, run_config(thread, third))
    assert result == {"log": ["a1", "b1", "c1", "more", "a4", "b4", "c4"]}
    latest = await h.list(thread_config(thread))
    assert [t.metadata["run_id"] for t in latest] == [third] * 5 + [first] * 5
    assert latest[4].parent_config is not None
    assert checkpoint_id(latest[4].parent_config) == checkpoint_id(remaining[0].config)

    await h.delete_for_runs([first, third, elsewhere])
    assert await h.list(thread_config(thread)) == []
    assert await h.list(thread_config(other)) == []
