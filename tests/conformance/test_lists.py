"""Long lists stored in segments (`checkpoint_base._lists`): every read gives the exact list.

A list of `MIN_ITEMS` or more items is stored as segments shared between checkpoints plus a
head per version. These tests grow, change, shrink, fork and delete such lists on every
backend and flavor, and read every checkpoint back, so that no layout a put can make reads
back as anything but the list that was put.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langgraph.checkpoint.base import Checkpoint

from checkpoint_base._lists import HEAD, MIN_ITEMS, TAIL, is_segment

from .builders import checkpoint, cid, config, new_thread
from .harness import Harness


def _message(i: int) -> BaseMessage:
    if i % 2:
        return AIMessage(content=f"answer {i} " + "x" * (i % 7), id=f"m{i}")
    return HumanMessage(content=f"question {i}", id=f"m{i}")


def _version(n: int) -> str:
    return f"{n:032}.{0.5:016}"


class _Thread:
    """Puts checkpoints of one thread whose channel "messages" is a list, like LangGraph:
    a new version only when the list changed, each put the child of the last."""

    def __init__(self, h: Harness, thread_id: str | None = None) -> None:
        self.h = h
        self.tid = thread_id or new_thread()
        self.parent: str | None = None
        self.counter = 0
        self.msg_version = _version(0)
        self.puts: list[tuple[Any, list[BaseMessage], dict[str, Any]]] = []

    async def put(
        self, messages: list[BaseMessage] | None, *, parent: str | None = None, **other: Any
    ) -> Any:
        """Put a checkpoint; `messages` None keeps the list of the parent (not in
        new_versions). Returns the stored config."""
        self.counter += 1
        new_versions: dict[str, str] = {}
        if messages is not None:
            self.msg_version = _version(self.counter)
            new_versions["messages"] = self.msg_version
            current = messages
        else:
            current = self.puts[-1][1] if parent is None else self._values_of(parent)
        values: dict[str, Any] = {"messages": current}
        versions: dict[str, Any] = {"messages": self.msg_version}
        for key, value in other.items():
            values[key] = value
            versions[key] = new_versions[key] = _version(self.counter)
        cp: Checkpoint = checkpoint(values, versions)
        base = parent if parent is not None else self.parent
        stored = await self.h.put(
            config(self.tid, "", base), cp, {"step": self.counter}, new_versions
        )
        self.parent = cid(stored)
        # What the checkpoint holds now, copied: a later change in place must not reach it.
        self.puts.append((stored, copy.deepcopy(current), values))
        return stored

    def _values_of(self, checkpoint_id: str) -> list[BaseMessage]:
        for stored, messages, _ in self.puts:
            if cid(stored) == checkpoint_id:
                return messages
        raise KeyError(checkpoint_id)

    async def check_all(self) -> None:
        """Every checkpoint put reads back with its own list, by id and through list()."""
        for stored, messages, _ in self.puts:
            got = await self.h.get_tuple(stored)
            assert got is not None, cid(stored)
            assert got.checkpoint["channel_values"]["messages"] == messages, cid(stored)
            assert set(got.checkpoint["channel_values"]) == set(got.checkpoint["channel_versions"])
        listed = {cid(t.config): t for t in await self.h.list(config(self.tid))}
        for stored, messages, _ in self.puts:
            if cid(stored) in listed:
                values = listed[cid(stored)].checkpoint["channel_values"]
                assert values["messages"] == messages, cid(stored)


async def _row(h: Harness, thread_id: str) -> Any:
    """The stored row of a thread's latest checkpoint, as the backend returns it."""
    plan = h.saver.backend.get(thread_id, "", None)
    if h.is_async:
        return await h.saver._arun(plan)
    return h.saver._run(plan)


async def test_a_growing_list_reads_back_at_every_step(h: Harness) -> None:
    t = _Thread(h)
    messages: list[BaseMessage] = []
    for i in range(3 * MIN_ITEMS + 5):
        messages = [*messages, _message(i)]
        await t.put(messages)
        if i % 5 == 0:
            await t.put(None, step=i)  # the list unchanged, another channel changed
    await t.check_all()
    row = await _row(h, t.tid)
    heads = [b for b in row.blobs if b.type == HEAD]
    segments = {k for k in row.checkpoint.channel_versions if is_segment(k)}
    assert len(heads) == 1 and segments, "a long list is stored in segments"
    # Sizes fall, so segments stay few: at most log2(n / TAIL) + 1.
    assert len(segments) <= (len(messages) // TAIL).bit_length()


async def test_a_message_changed_in_place_is_stored_as_changed(h: Harness) -> None:
    t = _Thread(h)
    messages = [_message(i) for i in range(MIN_ITEMS * 2)]
    await t.put(messages)
    await t.put([*messages, _message(100)])
    # A node edits an old message in place (the same object) and appends another.
    messages[3].content = "edited in place"
    messages = [*messages, _message(100), _message(101)]
    await t.put(messages)
    # And one rebuilt with the same values but other fields marked as set.
    messages[0] = HumanMessage.model_construct(content=messages[0].content, id="m0")
    await t.put([*messages, _message(102)])
    await t.check_all()
    first = await h.get_tuple(t.puts[0][0])
    assert first is not None
    assert first.checkpoint["channel_values"]["messages"][3].content != "edited in place"


async def test_removed_and_replaced_messages(h: Harness) -> None:
    t = _Thread(h)
    messages = [_message(i) for i in range(MIN_ITEMS * 3)]
    await t.put(messages)
    await t.put([*messages, _message(200)])
    await t.put(messages[:5] + messages[9:])  # removed from the middle
    await t.put(messages[: MIN_ITEMS * 2])  # cut at the end
    replaced = list(messages[: MIN_ITEMS * 2])
    replaced[MIN_ITEMS] = AIMessage(content="replaced", id=replaced[MIN_ITEMS].id)
    await t.put(replaced)
    await t.put(replaced[: MIN_ITEMS - 1])  # short again: stored whole
    await t.put([*replaced[: MIN_ITEMS - 1], _message(300), _message(301)])
    await t.put([])
    await t.check_all()


async def test_forks_read_their_own_lists(h: Harness) -> None:
    t = _Thread(h)
    messages = [_message(i) for i in range(MIN_ITEMS + 2)]
    for i in range(TAIL * 3):
        messages = [*messages, _message(50 + i)]
        await t.put(messages)
    fork_at = cid(t.puts[TAIL][0])
    # Time travel: read an old checkpoint (as LangGraph does), then put children of it.
    await h.get_tuple(config(t.tid, "", fork_at))
    forked = [*t.puts[TAIL][1], AIMessage(content="another future", id="f1")]
    await t.put(forked, parent=fork_at)
    await t.put([*forked, _message(999)])
    # And a child of an old checkpoint this saver did not read first.
    await t.put([*t.puts[2][1], _message(998)], parent=cid(t.puts[2][0]))
    await t.check_all()


async def test_a_saver_that_does_not_know_the_parent_layout(h: Harness) -> None:
    """Another process (or a saver that forgot) continues a thread whose list is stored in
    segments: first with the list unchanged, then changed."""
    t = _Thread(h)
    messages = [_message(i) for i in range(MIN_ITEMS + TAIL + 3)]
    await t.put(messages)
    await t.put([*messages, _message(40)])
    h.saver._lists.forget()
    await t.put(None, step=1)  # unchanged list, parent layout unknown
    h.saver._lists.forget()
    await t.put([*messages, _message(40), _message(41)])
    h.saver._lists.forget()
    await t.put(None, step=2)
    await t.put([*messages, _message(40), _message(41), _message(42)])
    await t.check_all()


async def test_prune_copy_and_delete_keep_what_kept_checkpoints_read(h: Harness) -> None:
    t = _Thread(h)
    messages: list[BaseMessage] = []
    for i in range(MIN_ITEMS + 4 * TAIL):
        messages = [*messages, _message(i)]
        await t.put(messages)
    copy_tid = new_thread()
    await h.copy_thread(t.tid, copy_tid)
    await h.prune([t.tid])
    latest = await h.get_tuple(config(t.tid))
    assert latest is not None
    assert latest.checkpoint["channel_values"]["messages"] == messages
    copied = await h.get_tuple(config(copy_tid))
    assert copied is not None
    assert copied.checkpoint["channel_values"]["messages"] == messages
    # The pruned thread goes on growing from what is left.
    messages = [*messages, _message(500)]
    await t.put(messages)
    got = await h.get_tuple(config(t.tid))
    assert got is not None and got.checkpoint["channel_values"]["messages"] == messages
    # The copy's history is whole.
    history = await h.list(config(copy_tid))
    assert len(history) == len(t.puts) - 1
    for tup in history:
        size = len(tup.checkpoint["channel_values"]["messages"])
        assert tup.checkpoint["channel_values"]["messages"] == messages[:size]
    await h.delete_thread(copy_tid)
    assert await h.get_tuple(config(copy_tid)) is None


async def test_delete_for_runs_keeps_segments_of_other_runs(h: Harness) -> None:
    tid = new_thread()
    messages: list[BaseMessage] = []
    parent: str | None = None
    stored: list[tuple[Any, list[BaseMessage]]] = []
    for i in range(MIN_ITEMS + 3 * TAIL):
        messages = [*messages, _message(i)]
        run = "keep" if i < MIN_ITEMS + TAIL else "drop"
        cp = checkpoint({"messages": messages}, {"messages": _version(i + 1)})
        cfg = await h.put(
            config(tid, "", parent), cp, {"run_id": run, "step": i}, {"messages": _version(i + 1)}
        )
        parent = cid(cfg)
        stored.append((cfg, list(messages)))
    await h.delete_for_runs(["drop"])
    for cfg, expected in stored[: MIN_ITEMS + TAIL]:
        got = await h.get_tuple(cfg)
        assert got is not None and got.checkpoint["channel_values"]["messages"] == expected
    assert await h.get_tuple(stored[-1][0]) is None


async def test_plain_lists_of_other_values(h: Harness) -> None:
    t = _Thread(h)
    values: list[Any] = [{"i": i, "b": bytes([i])} for i in range(MIN_ITEMS)]
    await t.put(values)  # type: ignore[arg-type]
    values = [*values, None, (1, 2), "s", 1.5, [1, [2]]]
    await t.put(values)  # type: ignore[arg-type]
    await t.put([*values, *range(TAIL * 2)])  # type: ignore[arg-type]
    await t.check_all()


async def test_a_chat_graph_edited_and_forked_matches_langgraphs_own_saver(h: Harness) -> None:
    """A real chat graph: long turns, a message removed, an old state edited (a fork), the
    thread continued from the fork. Every state of its history is the one LangGraph's own
    in-memory saver holds after the same calls."""
    from langchain_core.messages import RemoveMessage
    from langgraph.checkpoint.memory import InMemorySaver

    from .graphs import thread_config
    from .test_graph_messages import echo_bot, human

    async def story(saver: Any, run: Any) -> list[Any]:
        graph = echo_bot().compile(checkpointer=saver)
        cfg = thread_config(new_thread())
        for turn in range(1, 13):
            await run(graph, "invoke", {"messages": [human(turn)]}, cfg)
        await run(graph, "update_state", cfg, {"messages": [RemoveMessage(id="ai-3")]})
        await run(graph, "invoke", {"messages": [human(13)]}, cfg)
        old = (await run(graph, "history", cfg))[6].config
        fork = await run(graph, "update_state", old, {"messages": [human(99)]}, as_node="bot")
        for turn in range(14, 22):
            await run(graph, "invoke", {"messages": [human(turn)]}, fork)
        history = await run(graph, "history", cfg)
        return [
            [(type(m).__name__, m.id, m.content) for m in s.values.get("messages", [])]
            for s in history
        ]

    async def ours(graph: Any, what: str, *args: Any, **kwargs: Any) -> Any:
        if what == "invoke":
            return await h.invoke(graph, *args, **kwargs)
        if what == "update_state":
            return await h.update_state(graph, *args, **kwargs)
        return await h.state_history(graph, *args, **kwargs)

    async def theirs(graph: Any, what: str, *args: Any, **kwargs: Any) -> Any:
        if what == "invoke":
            return graph.invoke(*args, **kwargs)
        if what == "update_state":
            return graph.update_state(*args, **kwargs)
        return list(graph.get_state_history(*args, **kwargs))

    expected = await story(InMemorySaver(), theirs)
    got = await story(h.saver, ours)
    assert got == expected
    assert max(len(s) for s in got) >= MIN_ITEMS + TAIL


async def test_segment_lists_off_stores_whole_and_reads_both(h: Harness) -> None:
    t = _Thread(h)
    messages = [_message(i) for i in range(MIN_ITEMS + TAIL)]
    await t.put(messages)
    assert any(b.type == HEAD for b in (await _row(h, t.tid)).blobs)
    h.saver.segment_lists = False
    try:
        assert h.saver.segment_lists is False
        await t.put([*messages, _message(77)])
        row = await _row(h, t.tid)
        assert not any(b.type == HEAD for b in row.blobs)
        assert not any(is_segment(k) for k in row.checkpoint.channel_versions)
        await t.check_all()
    finally:
        h.saver.segment_lists = True
    await t.put([*messages, _message(77), _message(78)])
    await t.check_all()


async def test_keep_last_trims_around_segments_still_read(h: Harness) -> None:
    t = _Thread(h)
    h.saver.keep_last = 3
    try:
        messages: list[BaseMessage] = []
        for i in range(MIN_ITEMS + 5 * TAIL):
            messages = [*messages, _message(i)]
            await t.put(messages)
        kept = await h.list(config(t.tid))
        assert 3 <= len(kept) < len(t.puts)
        expected = {cid(stored): values for stored, values, _ in t.puts}
        for tup in kept:
            assert tup.checkpoint["channel_values"]["messages"] == expected[cid(tup.config)]
        h.saver._lists.forget()  # another process goes on from what the trims left
        await t.put([*messages, _message(999)])
        got = await h.get_tuple(config(t.tid))
        assert got is not None
        assert got.checkpoint["channel_values"]["messages"] == [*messages, _message(999)]
    finally:
        h.saver.keep_last = None


async def test_a_channel_named_like_a_segment_is_refused(h: Harness) -> None:
    from checkpoint_base import ConfigError

    tid = new_thread()
    cp = checkpoint({"\x010\x01messages": [1]}, {"\x010\x01messages": _version(1)})
    with pytest.raises(ConfigError, match="reserves"):
        await h.put(config(tid), cp, {}, {"\x010\x01messages": _version(1)})
    assert await h.get_tuple(config(tid)) is None


@pytest.mark.parametrize("damage", ["missing", "truncated"])
async def test_a_damaged_or_missing_segment_is_named_through_its_head(
    h: Harness, damage: str
) -> None:
    """A segment lost or cut short (a tool, a disk): reads of the checkpoint raise
    `DamagedDataError` naming the list's channel; the thread's other checkpoints still read."""
    import dataclasses

    from checkpoint_base import DamagedDataError
    from checkpoint_base._convert import put_records
    from checkpoint_base._lists import Lists

    t = _Thread(h)
    messages = [_message(i) for i in range(MIN_ITEMS + TAIL)]
    await t.put(messages)
    # A child stored by hand, as a damaged database would hold it.
    child = checkpoint({"messages": [*messages, _message(70)]}, {"messages": _version(99)})
    record, blobs, _ = put_records(
        h.saver.serde, Lists(), config(t.tid, "", t.parent), child, {"step": 99},
        {"messages": _version(99)},
    )  # fmt: skip
    segment = next(b for b in blobs if is_segment(b.channel))
    if damage == "missing":
        blobs = [b for b in blobs if b is not segment]
    else:
        cut = dataclasses.replace(segment, data=segment.data[: len(segment.data) // 2])
        blobs = [cut if b is segment else b for b in blobs]
    plan = h.saver.backend.put_checkpoint(record, blobs)
    if h.is_async:
        await h.saver._arun(plan)
    else:
        h.saver._run(plan)
    damaged = config(t.tid, "", record.checkpoint_id)
    for read in (h.get_tuple(damaged), h.list(config(t.tid), limit=1)):
        with pytest.raises(DamagedDataError, match="channel 'messages'") as raised:
            await read
        assert raised.value.checkpoint_id == record.checkpoint_id
    first = await h.get_tuple(t.puts[0][0])
    assert first is not None and first.checkpoint["channel_values"]["messages"] == messages
