"""Keys the saver did not write as it writes them: damaged values, wrong types, foreign keys.

Another application on the same server or key prefix, a key changed by hand, a value cut
short: the saver raises the package's errors naming the thread, never a bare msgpack error
or WRONGTYPE, keeps other threads readable, and can still delete the damaged thread.
"""

from __future__ import annotations

from typing import Any

import pytest

from checkpoint_base import DamagedDataError, StorageError
from checkpoint_redis import RedisSaver
from checkpoint_redis._keys import seg

from ..conformance.builders import checkpoint, cid, config, new_thread


def _thread(saver: RedisSaver, steps: int = 3) -> tuple[str, list[Any]]:
    tid = new_thread()
    configs = []
    parent = config(tid)
    for step in range(steps):
        parent = saver.put(
            parent,
            checkpoint({"msg": f"m{step}"}, {"msg": step + 1}),
            {"source": "loop", "step": step},
            {"msg": step + 1},
        )
        saver.put_writes(parent, [("msg", f"w{step}")], "task-1")
        configs.append(parent)
    return tid, configs


def _base(saver: RedisSaver, tid: str) -> bytes:
    return saver.backend.layout.thread(tid).base  # type: ignore[attr-defined,no-any-return]


def _field(checkpoint_id: str) -> bytes:
    return seg("") + seg(checkpoint_id)


def _gone_and_reusable(saver: RedisSaver, tid: str) -> None:
    saver.delete_thread(tid)
    assert saver.get_tuple(config(tid)) is None
    again = saver.put(config(tid), checkpoint({"msg": "new"}, {"msg": 1}), {}, {"msg": 1})
    got = saver.get_tuple(again)
    assert got is not None and got.checkpoint["channel_values"] == {"msg": "new"}


@pytest.mark.parametrize("cut", ["record", "links"])
def test_a_damaged_checkpoint_value_names_its_thread(open_saver: Any, raw: Any, cut: str) -> None:
    saver = open_saver()
    tid, (_first, mid, last) = _thread(saver)
    other, _ = _thread(saver)
    key, field = _base(saver, tid) + b"c", _field(cid(mid))
    value = raw.hget(key, field)
    # The value is the links Lua reads, then the record: cut in the record, or in the links.
    raw.hset(key, field, value[:-10] if cut == "record" else value[:6])

    for read in (
        lambda: saver.get_tuple(mid),
        lambda: list(saver.list(config(tid))),
        lambda: saver.copy_thread(tid, new_thread()),
    ):
        with pytest.raises(DamagedDataError) as raised:
            read()
        assert raised.value.thread_id == tid and repr(tid) in str(raised.value)
        assert "delete_thread" in str(raised.value)
    latest = saver.get_tuple(config(tid))
    assert latest is not None and cid(latest.config) == cid(last)
    assert [cid(t.config) for t in saver.list(config(tid), limit=1)] == [cid(last)]
    assert len(list(saver.list(config(other)))) == 3
    _gone_and_reusable(saver, tid)


@pytest.mark.parametrize("letter", [b"c", b"i", b"b", b"w"])
def test_a_thread_key_of_another_type_is_named(open_saver: Any, raw: Any, letter: bytes) -> None:
    saver = open_saver()
    tid, configs = _thread(saver)
    other, _ = _thread(saver)
    key = _base(saver, tid) + letter
    raw.delete(key)
    raw.set(key, b"another application's value")

    with pytest.raises(StorageError) as raised:
        saver.get_tuple(configs[1])
    message = str(raised.value)
    assert repr(tid) in message and "another type" in message and "key_prefix" in message
    assert repr(key) in message

    def write() -> None:
        if letter == b"w":
            saver.put_writes(configs[-1], [("msg", "x")], "task-2")
        else:
            saver.put(configs[-1], checkpoint({"msg": "x"}, {"msg": 9}), {}, {"msg": 9})

    with pytest.raises(StorageError, match="another type") as raised:
        write()
    assert repr(tid) in str(raised.value)
    assert len(list(saver.list(config(other)))) == 3
    _gone_and_reusable(saver, tid)


def test_a_foreign_schema_key_fails_setup_clearly(open_saver: Any, raw: Any) -> None:
    saver = open_saver()
    layout = saver.backend.layout
    raw.set(layout.schema_key, b"not-a-number")
    with pytest.raises(StorageError, match="another application uses the key prefix"):
        saver.setup()
    raw.delete(layout.schema_key)
    raw.hset(layout.schema_key, b"x", b"y")
    with pytest.raises(StorageError, match="another type"):
        saver.setup()
    raw.delete(layout.schema_key)
    saver.setup()


def test_other_applications_keys_are_never_read(open_saver: Any, raw: Any) -> None:
    saver = open_saver()
    prefix = saver.backend.layout.prefix
    tid, _ = _thread(saver, 2)
    # Keys of another application: beside the prefix, and under it outside our layout.
    foreign = [prefix + b"-other:{t" + b"x}:c", prefix + b":{tabc}:z", prefix + b":cache"]
    for key in foreign:
        raw.set(key, b"foreign")
    try:
        assert [t.thread_id for t in saver.list_threads()] == [tid]
        assert {t.config["configurable"]["thread_id"] for t in saver.list(None)} == {tid}
        assert saver.get_tuple(config("abc")) is None
        saver.delete_thread(tid)
        assert all(raw.get(key) == b"foreign" for key in foreign)
    finally:
        for key in foreign:
            raw.delete(key)
