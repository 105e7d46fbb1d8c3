"""Blobs read from Redis are views into the reply; no caller of the saver ever sees one."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.base.id import uuid6
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from checkpoint_base import EMPTY
from checkpoint_base.serde import MsgpackSerializer

_CFG: dict[str, Any] = {"configurable": {"thread_id": "views", "checkpoint_ns": ""}}


def _put(saver: Any) -> list[Any]:
    messages = [HumanMessage("hi " * 2000, id="1"), AIMessage("hello " * 2000, id="2")]
    cp = empty_checkpoint()
    cp["id"] = str(uuid6(clock_seq=1))
    cp["channel_values"] = {"raw": b"\x00bytes\xff" * 10_000, "messages": messages}
    cp["channel_versions"] = {"raw": "1", "messages": "1"}
    saver.put(_CFG, cp, {"step": 1}, dict(cp["channel_versions"]))
    return messages


def test_a_fetched_blob_is_a_view_and_values_come_back_as_their_types(open_saver: Any) -> None:
    saver = open_saver()
    messages = _put(saver)
    row = saver._run(saver.backend.get("views", "", None))
    stored = [b for b in row.blobs if b.type != EMPTY]
    assert {b.channel for b in stored} == {"raw", "messages"}
    assert all(type(b.data) is memoryview for b in stored)  # no copy of each value

    for tup in (saver.get_tuple(_CFG), *saver.list(_CFG)):
        values = tup.checkpoint["channel_values"]
        assert type(values["raw"]) is bytes  # never a view of the reply
        assert values["raw"] == b"\x00bytes\xff" * 10_000
        assert values["messages"] == messages


class _Recording:
    """A serializer of the user's own: it is promised bytes, and records what it gets."""

    def __init__(self) -> None:
        self.inner = JsonPlusSerializer()
        self.seen: list[type] = []

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        return self.inner.dumps_typed(obj)

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        self.seen.append(type(data[1]))
        return self.inner.loads_typed(data)


def test_a_serializer_of_yours_is_given_bytes(open_saver: Any) -> None:
    serde = _Recording()
    saver = open_saver(serde=serde)
    messages = _put(saver)
    row = saver._run(saver.backend.get("views", "", None))
    assert any(type(b.data) is memoryview for b in row.blobs)  # what the backend returned

    serde.seen.clear()
    tup = saver.get_tuple(_CFG)
    assert tup is not None and tup.checkpoint["channel_values"]["messages"] == messages
    listed = list(saver.list(_CFG))
    assert len(listed) == 1
    assert serde.seen and set(serde.seen) == {bytes}


def test_ours_reads_the_view_without_a_copy(open_saver: Any, monkeypatch: Any) -> None:
    saver = open_saver()
    assert type(saver.serde) is MsgpackSerializer
    _put(saver)
    seen: list[type] = []
    loads = MsgpackSerializer.loads_typed

    def spy(self: Any, data: tuple[str, Any]) -> Any:
        seen.append(type(data[1]))
        return loads(self, data)

    monkeypatch.setattr(MsgpackSerializer, "loads_typed", spy)
    assert saver.get_tuple(_CFG) is not None
    assert memoryview in seen
