"""Stored bytes that declare huge sizes fail fast and small; values at the edges round-trip.

A msgpack header may claim 2**32-1 elements or bytes in a value of five bytes, or nest
200,000 levels. The read paths (`get_tuple`, `list`) must answer
with a `DamagedDataError` at once, allocating nothing near what the header claims: peak
memory is measured with tracemalloc around the reads.
"""

from __future__ import annotations

import time
import tracemalloc
from typing import Any

import pytest

from checkpoint_base import DamagedDataError
from checkpoint_base.serde import MsgpackSerializer

from .builders import checkpoint, cid, config, new_thread
from .harness import Harness

_HOSTILE = {
    "array of 2**32-1": ("msgpack.cp2", b"\xdd\xff\xff\xff\xff"),
    "map of 2**32-1": ("msgpack.cp2", b"\xdf\xff\xff\xff\xff"),
    "str of 2**32-1 bytes": ("msgpack.cp2", b"\xdb\xff\xff\xff\xff"),
    "bin of 2**32-1 bytes": ("msgpack.cp2", b"\xc6\xff\xff\xff\xff"),
    "ext of 2**32-1 bytes": ("msgpack.cp2", b"\xc9\xff\xff\xff\xff\x01"),
    "rows list of 2**32-1": ("msgpack.cp4", b"\xdd\xff\xff\xff\xff\x90"),
    "nested 200,000 deep": ("msgpack.cp2", b"\x91" * 200_000 + b"\xc0"),
    "jsonplus array of 2**32-1": ("msgpack", b"\xdd\xff\xff\xff\xff"),
    "jsonplus nested ext": ("msgpack", b"\xc7\x05\x02\xdd\xff\xff\xff\xff" * 2),
    "json nested 200,000 deep": ("json", b"[" * 200_000 + b"]" * 200_000),
}
_MARK = "HOSTILE:"


class _Hostile:
    """Writes the hostile bytes named by a `_MARK` string value, as a damaged store holds them."""

    def __init__(self) -> None:
        self.inner = MsgpackSerializer()

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        if isinstance(obj, str) and obj.startswith(_MARK):
            return _HOSTILE[obj[len(_MARK) :]]
        return self.inner.dumps_typed(obj)

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        return self.inner.loads_typed(data)


async def test_huge_declared_sizes_fail_fast_and_small(h: Harness) -> None:
    serde = h.saver.serde
    tid = new_thread()
    first = await h.put(config(tid), checkpoint({"v": "fine"}), {"step": 0}, {"v": 1})
    h.saver.serde = _Hostile()  # type: ignore[assignment]
    try:
        parent, stored = first, []
        for step, name in enumerate(_HOSTILE, start=1):
            value = checkpoint({"v": _MARK + name}, {"v": step + 1})
            parent = await h.put(parent, value, {"step": step}, {"v": step + 1})
            stored.append((name, parent))
    finally:
        h.saver.serde = serde
    tracemalloc.start()
    try:
        started = time.monotonic()
        for name, cfg in stored:
            with pytest.raises(DamagedDataError, match="channel 'v'") as raised:
                await h.get_tuple(cfg)
            assert raised.value.checkpoint_id == cid(cfg), name
            with pytest.raises(DamagedDataError):
                await h.list(config(tid), before=_child_of(stored, name), limit=1)
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20, f"{peak:,} bytes at peak"  # what the headers claim: 4 GB each
    assert elapsed < 10, f"{elapsed:.1f} s"
    got = await h.get_tuple(first)
    assert got is not None and got.checkpoint["channel_values"] == {"v": "fine"}


def _child_of(stored: list[tuple[str, Any]], name: str) -> Any:
    """`before=` that lists exactly the checkpoint stored for `name` first."""
    names = [n for n, _ in stored]
    i = names.index(name)
    return stored[i + 1][1] if i + 1 < len(stored) else None


@pytest.mark.parametrize(
    "value",
    [b"", "", bytearray(), "\x00", "a\x00b\x00", "\ud800", "\U0010ffff\ufeff\u200b\r\n", [b""]],
    ids=["bytes", "str", "bytearray", "nul", "nuls", "lone surrogate", "edges", "nested"],
)
async def test_edge_values_round_trip(h: Harness, value: Any) -> None:
    tid = new_thread()
    stored = await h.put(config(tid), checkpoint({"v": value}), {"step": 0}, {"v": 1})
    await h.put_writes(stored, [("v", value)], "task-1")
    got = await h.get_tuple(config(tid))
    assert got is not None
    assert got.checkpoint["channel_values"]["v"] == value
    assert type(got.checkpoint["channel_values"]["v"]) is type(value)
    assert got.pending_writes == [("task-1", "v", value)]
