"""Damaged stored values: a clear `DamagedDataError` naming thread, checkpoint and part.

The damage is written through the saver itself, with a serializer that cuts one value's bytes
short or gives it a type tag no serializer knows: what a truncating disk, a buggy tool or
another version of a serializer leaves behind, on every backend alike. The checks: the
error is the package's and says where; the other checkpoints of the thread stay readable;
`copy_thread`, `prune` and `delete_thread` still work on the damaged thread.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from langchain_core.runnables import RunnableConfig

from checkpoint_base import CheckpointerError, DamagedDataError
from checkpoint_base.serde import MsgpackSerializer

from .builders import checkpoint, cid, config, new_thread
from .harness import Harness

_BAD = "DAMAGE-ME"


class _Damaging:
    """Writes values containing `_BAD` the way a damaged database would hold them."""

    def __init__(self, how: str) -> None:
        self.inner = MsgpackSerializer()
        self.how = how

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        type_, data = self.inner.dumps_typed(obj)
        if isinstance(obj, str) and _BAD in obj:
            if self.how == "truncated":
                return type_, data[: len(data) // 2]
            return "msgpack.cp9", data  # a type tag from a future or foreign serializer
        return type_, data

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        return self.inner.loads_typed(data)


def _damaging(h: Harness, how: str) -> Harness:
    saver = copy.copy(h.saver)
    saver.serde = _Damaging(how)  # type: ignore[assignment]
    return Harness(h.target, h.flavor, saver)


async def _thread(h: Harness, how: str, where: str) -> tuple[str, list[RunnableConfig]]:
    """Three checkpoints; the middle one holds a damaged blob (`where="blob"`) or write."""
    tid = new_thread()
    bad = _damaging(h, how)
    configs: list[RunnableConfig] = []
    parent: RunnableConfig = config(tid)
    for step in range(3):
        value = f"{_BAD} {step}" if (step == 1 and where == "blob") else f"fine {step}"
        stored = await bad.put(
            parent,
            checkpoint({"msg": value, "n": step}, {"msg": step + 1, "n": step + 1}),
            {"source": "loop", "step": step},
            {"msg": step + 1, "n": step + 1},
        )
        write = f"{_BAD} write" if (step == 1 and where == "write") else "fine write"
        await bad.put_writes(stored, [("msg", write)], "task-1")
        configs.append(stored)
        parent = stored
    return tid, configs


def _names(exc: DamagedDataError, tid: str, checkpoint_id: str | None, part: str) -> None:
    message = str(exc)
    assert isinstance(exc, CheckpointerError) and isinstance(exc, ValueError)
    assert exc.thread_id == tid and repr(tid) in message
    if checkpoint_id is not None:
        assert exc.checkpoint_id == checkpoint_id and repr(checkpoint_id) in message
    assert part in message, message
    assert "delete_thread" in message
    assert exc.__cause__ is not None


@pytest.mark.parametrize("how", ["truncated", "unknown-tag"])
async def test_damaged_blob_is_named_and_the_rest_stays_readable(h: Harness, how: str) -> None:
    tid, (first, mid, last) = await _thread(h, how, "blob")

    with pytest.raises(DamagedDataError) as raised:
        await h.get_tuple(mid)
    _names(raised.value, tid, cid(mid), "channel 'msg'")

    latest = await h.get_tuple(config(tid))
    assert latest is not None and latest.checkpoint["channel_values"] == {"msg": "fine 2", "n": 2}
    older = await h.get_tuple(first)
    assert older is not None and older.checkpoint["channel_values"]["msg"] == "fine 0"
    assert [cid(t.config) for t in await h.list(config(tid), limit=1)] == [cid(last)]
    assert [cid(t.config) for t in await h.list(config(tid), before=mid)] == [cid(first)]

    with pytest.raises(DamagedDataError) as raised:
        await h.list(config(tid))
    _names(raised.value, tid, cid(mid), "channel 'msg'")
    with pytest.raises(DamagedDataError) as raised:
        await h.list(config(tid), filter={"step": 1})
    _names(raised.value, tid, cid(mid), "channel 'msg'")

    # The delta walk from the last checkpoint reads the damaged value as its seed.
    with pytest.raises(DamagedDataError) as raised:
        await h.delta_history(last, ["msg"])
    _names(raised.value, tid, None, "channel 'msg'")


async def test_damaged_write_is_named(h: Harness) -> None:
    tid, (_first, mid, last) = await _thread(h, "truncated", "write")
    with pytest.raises(DamagedDataError) as raised:
        await h.get_tuple(mid)
    _names(raised.value, tid, cid(mid), "task 'task-1'")
    latest = await h.get_tuple(config(tid))
    assert latest is not None and latest.pending_writes == [("task-1", "msg", "fine write")]
    with pytest.raises(DamagedDataError) as raised:
        await h.delta_history(last, ["msg"])
    _names(raised.value, tid, cid(mid), "task 'task-1'")


async def test_a_damaged_thread_can_be_copied_pruned_and_deleted(h: Harness) -> None:
    tid, (_first, mid, last) = await _thread(h, "truncated", "blob")
    copied = new_thread()
    await h.copy_thread(tid, copied)
    with pytest.raises(DamagedDataError) as raised:
        await h.get_tuple(config(copied, checkpoint_id=cid(mid)))
    _names(raised.value, copied, cid(mid), "channel 'msg'")

    await h.prune([tid])
    assert [cid(t.config) for t in await h.list(config(tid))] == [cid(last)]

    await h.delete_thread(copied)
    assert await h.get_tuple(config(copied)) is None
    assert await h.list(config(copied)) == []
