"""Metadata nested too deeply: refused at put, and a clear `DamagedDataError` when stored.

Python's json reads and writes each level of nesting with a recursive C call. Before, a put
of metadata nested a few thousand levels deep raised a bare `RecursionError`, and stored
metadata nested that deep (a record migrated from a damaged source, a row written by another
program) made `get_tuple`, `list` and `prune` raise one too, on every backend: not a
`CheckpointerError`, naming neither the thread nor the checkpoint. Now a put refuses metadata
deeper than `MAX_METADATA_DEPTH` with a `ConfigError`, and reading such metadata is damaged
data like any other unreadable metadata. PostgreSQL, which parses the metadata into JSONB
when storing it, refuses such a record with "stack depth limit exceeded"; that error (class
54, program limit exceeded) read as `StorageUnavailableError`, "cannot be reached", which a
caller retries: it is a `StorageError` now.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from checkpoint_base import (
    CheckpointerError,
    ConfigError,
    DamagedDataError,
    StorageError,
    StorageUnavailableError,
)
from checkpoint_base._convert import to_records
from checkpoint_base._metadata import MAX_METADATA_DEPTH

from .builders import checkpoint, cid, config, new_thread
from .harness import Harness


def _nested(levels: int) -> Any:
    """`levels` lists, one inside the other."""
    value: Any = "leaf"
    for _ in range(levels):
        value = [value]
    return value


# Deeper than any recursion limit of Python's json, far below the bytes it takes to store.
_DEEP_JSON = b'{"step":2,"deep":' + b"[" * 100_000 + b"]" * 100_000 + b"}"


async def _run(h: Harness, plan: Any) -> Any:
    if h.is_async:
        return await h.saver._arun(plan)
    return h.saver._run(plan)


@pytest.mark.parametrize("levels", [MAX_METADATA_DEPTH, 5_000])
async def test_put_refuses_metadata_nested_too_deep(h: Harness, levels: int) -> None:
    tid = new_thread()
    # The metadata dict is a level: MAX_METADATA_DEPTH - 1 lists inside it still fit.
    fits = _nested(MAX_METADATA_DEPTH - 1)
    stored = await h.put(config(tid), checkpoint({"v": 1}), {"k": fits}, {"v": 1})
    with pytest.raises(ConfigError, match=f"deeper than {MAX_METADATA_DEPTH} levels"):
        await h.put(stored, checkpoint({"v": 2}), {"k": _nested(levels)}, {"v": 2})
    latest = await h.get_tuple(config(tid))
    assert latest is not None and cid(latest.config) == cid(stored)
    assert latest.metadata["k"] == fits


async def test_stored_metadata_nested_too_deep_is_damaged_data(h: Harness) -> None:
    tid = new_thread()
    first = await h.put(config(tid), checkpoint({"v": 0}), {"step": 0}, {"v": 1})
    mid = await h.put(first, checkpoint({"v": 1}), {"step": 1}, {"v": 2})
    record, blobs = to_records(h.saver.serde, mid, checkpoint({"v": 2}), {"step": 2}, {"v": 3})
    record = dataclasses.replace(record, metadata=_DEEP_JSON)
    # As migration writes a record: its bytes as they are, where the backend allows. Redis
    # reads the metadata to index it and PostgreSQL to store it as JSONB: they refuse the
    # record whole, naming what is wrong.
    write = h.saver.backend.put_checkpoint(record, blobs)
    if h.target.backend in ("redis", "postgres"):
        with pytest.raises(CheckpointerError, match=r"metadata|beyond a PostgreSQL limit") as no:
            await _run(h, write)
        assert not isinstance(no.value, StorageUnavailableError)  # sent again, fails again
        latest = await h.get_tuple(config(tid))
        assert latest is not None and cid(latest.config) == cid(mid)
        return
    await _run(h, write)
    last = config(tid, checkpoint_id=record.checkpoint_id)

    for read in (lambda: h.get_tuple(config(tid)), lambda: h.list(config(tid))):
        with pytest.raises(DamagedDataError, match="metadata") as raised:
            await read()
        assert raised.value.thread_id == tid
        assert raised.value.checkpoint_id == record.checkpoint_id
    # SQLite filters in SQL, whose JSON functions refuse the column first (and say how to
    # find the row); the others decode it in Python.
    with pytest.raises(StorageError, match="metadata"):
        await h.list(config(tid), filter={"step": 2})
    older = await h.list(config(tid), before=last)
    assert [t.metadata["step"] for t in older] == [1, 0]

    await h.prune([tid])  # keeps the latest, whose delta channels it cannot tell
    assert [cid(t.config) for t in await h.list(config(tid), before=last)] == []
    await h.delete_thread(tid)
    assert await h.get_tuple(config(tid)) is None
