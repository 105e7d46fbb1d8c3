"""Batches past what one statement may bind (65535 parameters) still land in one statement."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from checkpoint_base import BlobRecord, CheckpointRow, ListQuery, WriteRecord
from checkpoint_postgres._sql import MAX_VALUES_ROWS
from tests.conformance.builders import checkpoint, cid, config

from .conftest import Opened, unique

MANY = 8_000  # 8000 writes x 9 values = 72000 parameters as VALUES rows


async def test_thousands_of_writes_in_one_call(opened: Opened) -> None:
    h = opened.h
    thread = unique()
    stored = await h.put(config(thread), checkpoint({"a": 1}), {}, {"a": 1})
    writes = [("fan", i) for i in range(MANY)] + [("__error__", "boom")]
    await h.put_writes(stored, writes, "task-big")
    await h.put_writes(stored, [("fan", -1)], "task-big")  # idx 0 exists: kept, not replaced
    got = await h.get_tuple(config(thread))
    assert got is not None
    assert len(got.pending_writes) == MANY + 1
    values = [v for _, ch, v in got.pending_writes if ch == "fan"]
    assert sorted(values) == list(range(MANY))
    assert ("task-big", "__error__", "boom") in got.pending_writes


async def test_migrating_a_checkpoint_with_many_channels(opened: Opened) -> None:
    """put_checkpoint with blobs and writes past the VALUES limit, as a migration sends."""
    thread = unique()
    stored = await opened.h.put(config(thread), checkpoint({"x": 0}), {"step": 0}, {"x": 1})
    (row,) = await _run(opened, opened.saver.backend.list_page(ListQuery(thread_id=thread)))
    versions = {f"ch{i}": f"{i + 1:032}.0.{i}" for i in range(MAX_VALUES_ROWS + 500)}
    blobs = [
        BlobRecord(thread, "", ch, v, "msgpack", f"value {ch}".encode())
        for ch, v in versions.items()
    ]
    writes = [
        WriteRecord(thread, "", cid(stored), f"t{i}", i, "ch0", "msgpack", b"w")
        for i in range(MAX_VALUES_ROWS + 10)
    ]
    moved = dataclasses.replace(row.checkpoint, channel_versions=versions, created_at=time.time())
    await _run(opened, opened.saver.backend.put_checkpoint(moved, blobs, writes))

    (row,) = await _run(opened, opened.saver.backend.list_page(ListQuery(thread_id=thread)))
    assert row.checkpoint.channel_versions == versions
    assert {(b.channel, b.version, b.data) for b in row.blobs} == {
        (b.channel, b.version, b.data) for b in blobs
    }
    assert len(row.writes) == MAX_VALUES_ROWS + 10


async def _run(opened: Opened, plan: Any) -> list[CheckpointRow]:
    if opened.flavor == "sync":
        return opened.saver._run(plan)  # type: ignore[no-any-return]
    return await opened.saver._arun(plan)  # type: ignore[no-any-return]
