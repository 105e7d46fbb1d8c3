"""`keep_last` retention: each namespace of a thread keeps its newest checkpoints as puts go,
on every backend, with the values, writes and blobs the kept ones read."""

from __future__ import annotations

import logging
import operator
from collections import Counter
from collections.abc import Iterator
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from checkpoint_base import ConfigError, MemorySaver, StorageError, connect

from ..langgraph_limits import skip_async_interrupts
from .builders import checkpoint, cid, config, new_thread
from .graphs import Runs, ask_graph, linear_graph, thread_config
from .harness import Harness


@pytest.fixture
def keep(h: Harness) -> Iterator[Harness]:
    """The harness's saver, its `keep_last` put back afterwards."""
    before = h.saver.keep_last
    yield h
    h.saver.keep_last = before


async def _ids(h: Harness, thread_id: str, ns: str = "") -> list[str]:
    return [cid(t.config) for t in await h.list(config(thread_id, ns))]


async def test_each_namespace_keeps_its_newest(keep: Harness) -> None:
    h = keep
    h.saver.keep_last = 4  # trims every 2 puts of the thread: at most 5 stored per namespace
    tid, other = new_thread(), new_thread()
    stored: dict[str, list[str]] = {"": [], "child:x": []}
    for step in range(15):
        for ns in ("", "child:x") if step % 2 == 0 else ("",):
            parent = stored[ns][-1] if stored[ns] else None
            got = await h.put(
                config(tid, ns, parent),
                checkpoint({"step": step}, {"step": step + 1}),
                {"source": "loop", "step": step},
                {"step": step + 1},
            )
            stored[ns].append(cid(got))
            ids = await _ids(h, tid, ns)
            assert ids == stored[ns][::-1][: len(ids)], "the newest, newest first"
            assert min(len(stored[ns]), 4) <= len(ids) <= 5
    for ns in ("", "child:x"):  # the count is per thread: a trim trims every namespace
        ids = await _ids(h, tid, ns)
        assert ids == stored[ns][::-1][: len(ids)] and 4 <= len(ids) <= 5
    # A thread below its bound is not touched.
    one = await h.put(config(other), checkpoint({"a": 1}), {}, {"a": 1})
    assert await _ids(h, other) == [cid(one)]


async def test_kept_checkpoints_keep_values_written_long_before(keep: Harness) -> None:
    """A channel stored once at the start and never changed lives in a blob that only the
    trimmed checkpoints wrote: the kept ones still read it, so it must stay."""
    h = keep
    h.saver.keep_last = 2
    tid = new_thread()
    parent: str | None = None
    for step in range(9):
        values = {"step": step, "constant": "from step 0"}
        versions = {"step": step + 1, "constant": 1}
        new = {"step": step + 1, "constant": 1} if step == 0 else {"step": step + 1}
        got = await h.put(config(tid, "", parent), checkpoint(values, versions), {}, new)
        await h.put_writes(got, [("w", f"write {step}")], f"task-{step}")
        parent = cid(got)
    kept = await h.list(config(tid))
    assert len(kept) == 2  # keep_last=2 trims after every put
    for t in kept:
        assert t.checkpoint["channel_values"]["constant"] == "from step 0"
    latest = kept[0]
    assert latest.checkpoint["channel_values"]["step"] == 8
    assert latest.pending_writes == [("task-8", "w", "write 8")]


async def test_a_graph_runs_and_resumes_with_two_kept(keep: Harness) -> None:
    skip_async_interrupts(keep.is_async)
    h = keep
    h.saver.keep_last = 2
    runs = Runs()
    graph = linear_graph(runs).compile(checkpointer=h.saver)
    cfg = thread_config(new_thread())
    for _ in range(4):
        await h.invoke(graph, {"log": []}, cfg)
    state = await h.get_state(graph, cfg)
    assert state.values["log"] == [f"{n}{i}" for i in range(1, 5) for n in ("a", "b", "c")]
    history = await h.state_history(graph, cfg)
    assert len(history) == 2  # keep_last=2 trims after every put

    asks = Runs()
    ask = ask_graph(asks).compile(checkpointer=h.saver)
    cfg = thread_config(new_thread())
    for _ in range(3):  # several interrupted runs, their checkpoints trimmed behind them
        await h.invoke(ask, {"log": []}, cfg)
        result = await h.invoke(ask, Command(resume="Ada"), cfg)
    assert result["log"][-1] == "hello Ada"
    assert result["log"].count("hello Ada") == 3


async def test_a_delta_channel_still_rebuilds(keep: Harness) -> None:
    # Imported here: the module skips itself on a LangGraph without DeltaChannel (before 1.2),
    # and the other keep_last tests run there too.
    delta = pytest.importorskip(
        "tests.conformance.test_graph_delta", reason="this LangGraph has no DeltaChannel"
    )
    counting_graph, run_config = delta.counting_graph, delta.run_config
    h = keep
    h.saver.keep_last = 1
    cfg = run_config(new_thread())
    graph = counting_graph().compile(checkpointer=h.saver)
    await h.invoke(graph, {"items": [], "n": 0, "stop": 30}, cfg)
    result = await h.invoke(graph, {"stop": 40}, cfg)
    assert result == {"items": list(range(40)), "n": 40, "stop": 40}
    stored = await h.list(cfg)
    assert len(stored) < 10  # the chain back to the last snapshot, not 40 steps
    fresh = counting_graph().compile(checkpointer=h.saver)
    assert (await h.get_state(fresh, cfg)).values["items"] == list(range(40))
    assert (await h.invoke(fresh, {"stop": 44}, cfg))["items"] == list(range(44))


async def test_a_failed_trim_leaves_the_put_stored(
    keep: Harness, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = keep
    h.saver.keep_last = 1
    tid = new_thread()
    first = await h.put(config(tid), checkpoint({"a": 1}), {}, {"a": 1})

    def broken(thread_id: str) -> Any:
        raise StorageError("the database went away")
        yield  # a plan

    monkeypatch.setattr(h.saver.backend, "checkpoint_keys", broken)
    with caplog.at_level(logging.WARNING, logger="checkpoint_base"):
        second = await h.put(config(tid, "", cid(first)), checkpoint({"a": 2}), {}, {"a": 2})
    assert "the database went away" in caplog.text and tid in caplog.text
    assert await _ids(h, tid) == [cid(second), cid(first)]
    monkeypatch.undo()
    third = await h.put(config(tid, "", cid(second)), checkpoint({"a": 3}), {}, {"a": 3})
    assert await _ids(h, tid) == [cid(third)]


async def test_a_trim_does_not_read_back_the_checkpoint_just_stored(
    keep: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With `keep_last=1` the checkpoint kept is the one the put stored: the trim checks its
    delta channels on the record in hand, not on a read of it (a round trip with every blob)."""
    h = keep
    h.saver.keep_last = 1
    tid = new_thread()
    first = await h.put(config(tid), checkpoint({"a": 1}), {}, {"a": 1})
    reads: list[tuple[Any, ...]] = []
    get = h.saver.backend.get

    def counted(*args: Any) -> Any:
        reads.append(args)
        return (yield from get(*args))

    monkeypatch.setattr(h.saver.backend, "get", counted)
    second = await h.put(config(tid, "", cid(first)), checkpoint({"a": 2}), {}, {"a": 2})
    assert await _ids(h, tid) == [cid(second)]
    assert reads == []


@pytest.mark.parametrize("bad", [0, -3, True, 2.5, "10"])
def test_keep_last_must_be_a_positive_int(bad: Any) -> None:
    with pytest.raises(ConfigError, match="keep_last must be None"):
        connect("memory://", keep_last=bad)
    with connect("memory://") as saver:
        with pytest.raises(ConfigError, match="keep_last must be None"):
            saver.keep_last = bad
        assert saver.keep_last is None


def test_connect_sets_keep_last() -> None:
    with connect("memory://", keep_last=3) as saver:
        assert saver.keep_last == 3
        tid = new_thread()
        parent = None
        for step in range(6):
            got = saver.put(config(tid, "", parent), checkpoint({"s": step}), {}, {"s": 1})
            parent = cid(got)
        assert len(list(saver.list(config(tid)))) == 3


class _Log(TypedDict):
    log: Annotated[list[str], operator.add]


def _graph_with_subgraph(pause: bool) -> Any:
    """outer -> child (a subgraph: inner, then `interrupt()` when `pause`) -> END."""

    def inner(state: _Log) -> dict[str, list[str]]:
        answer = interrupt("go on?") if pause else "auto"
        return {"log": [f"inner {answer}"]}

    sub = StateGraph(_Log)
    sub.add_node("inner", inner)
    sub.add_edge(START, "inner")
    builder = StateGraph(_Log)
    builder.add_node("outer", lambda state: {"log": ["outer"]})
    builder.add_node("child", sub.compile())
    builder.add_edge(START, "outer")
    builder.add_edge("outer", "child")
    builder.add_edge("child", END)
    return builder


async def _namespaces(h: Harness, thread_id: str) -> Counter[str]:
    stored = await h.list({"configurable": {"thread_id": thread_id}})
    return Counter(t.config["configurable"]["checkpoint_ns"] for t in stored)


async def test_finished_subgraph_runs_do_not_pile_up(keep: Harness) -> None:
    """Each run of a subgraph node has a namespace of its own: those that finished before
    the oldest kept root checkpoint go whole, or they would grow with the thread."""
    h = keep
    h.saver.keep_last = 2
    graph = _graph_with_subgraph(pause=False).compile(checkpointer=h.saver)
    reference = _graph_with_subgraph(pause=False).compile(checkpointer=MemorySaver())
    cfg = thread_config(new_thread())
    for _ in range(6):
        await h.invoke(graph, {"log": []}, cfg)
        reference.invoke({"log": []}, cfg)
    state = await h.get_state(graph, cfg)
    assert state.values == reference.get_state(cfg).values
    assert state.values["log"].count("inner auto") > 6  # the subgraph's output is appended
    namespaces = await _namespaces(h, cfg["configurable"]["thread_id"])
    assert namespaces[""] <= 2
    assert len(namespaces) <= 3, namespaces  # the root and at most the last two runs'


async def test_an_interrupted_subgraph_keeps_its_namespace(keep: Harness) -> None:
    skip_async_interrupts(keep.is_async)
    h = keep
    h.saver.keep_last = 1
    graph = _graph_with_subgraph(pause=True).compile(checkpointer=h.saver)
    reference = _graph_with_subgraph(pause=True).compile(checkpointer=MemorySaver())
    cfg = thread_config(new_thread())
    for turn in range(4):
        await h.invoke(graph, {"log": []}, cfg)
        reference.invoke({"log": []}, cfg)
        paused = await h.get_state(graph, cfg, subgraphs=True)
        assert paused.next == ("child",) and paused.tasks[0].state is not None
        result = await h.invoke(graph, Command(resume=f"yes {turn}"), cfg)
        assert result == reference.invoke(Command(resume=f"yes {turn}"), cfg)
        assert result["log"][-1] == f"inner yes {turn}"
    assert len(await _namespaces(h, cfg["configurable"]["thread_id"])) <= 2
