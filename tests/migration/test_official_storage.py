"""Import from and export to the official savers' own storage, and any saver's public API.

The official `SqliteSaver` / `PostgresSaver` are read and written through their tables, so
values keep their bytes and type tags; LangGraph's `InMemorySaver` and a subclass of an
official saver go through the public API.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from checkpoint_base._migrate import amigrate, as_side, averify, migrate, verify
from checkpoint_base._migrate_api import ApiSide
from checkpoint_base._migrate_lgpostgres import LangGraphPostgresSide
from checkpoint_base._migrate_lgsqlite import LangGraphSqliteSide
from checkpoint_base.testing.targets import Target

from ..langgraph_limits import needs_async_interrupts
from .conftest import TARGETS, one_per_backend
from .workload import (
    aassert_same_storage,
    afill,
    aresume_both,
    assert_same_storage,
    fill,
    resume_both,
)

OURS = [t for t in one_per_backend(TARGETS) if t.open_sync is not None]
OFFICIAL = {t.backend: t for t in one_per_backend(TARGETS) if t.backend in ("sqlite", "postgres")}


def _official(kind: str) -> Target:
    if kind not in OFFICIAL:  # CHECKPOINTERS_TEST_BACKENDS left it out
        pytest.skip(f"the {kind} target is not selected")
    return OFFICIAL[kind]


def _memory_target() -> Target:
    memory = next((t for t in TARGETS if t.backend == "memory"), None)
    if memory is None:  # CHECKPOINTERS_TEST_BACKENDS left it out
        pytest.skip("the memory target is not selected")
    return memory


def _open_official(kind: str) -> AbstractContextManager[Any]:
    target = _official(kind)
    assert target.official_sync is not None
    return target.official_sync()


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
@pytest.mark.parametrize("ours", OURS, ids=lambda t: t.name)
def test_import_from_official_storage(kind: str, ours: Target) -> None:
    assert ours.open_sync is not None
    with _open_official(kind) as official, ours.open_sync() as saver:
        side = as_side(official)
        assert isinstance(side, (LangGraphSqliteSide, LangGraphPostgresSide)) and side.exact
        work = fill(official)
        report = migrate(official, saver)
        total = assert_same_storage(official, saver, work)
        assert report.checkpoints_copied == total
        assert migrate(official, saver).checkpoints_copied == 0
        assert verify(official, saver).ok
        _assert_tags_kept(kind, official, saver, work.thread_ids)
        resume_both(official, saver, work)


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
@pytest.mark.parametrize("ours", OURS, ids=lambda t: t.name)
def test_export_to_official_storage(kind: str, ours: Target) -> None:
    assert ours.open_sync is not None
    with ours.open_sync() as saver, _open_official(kind) as official:
        work = fill(saver)
        report = migrate(saver, official)
        total = assert_same_storage(saver, official, work)
        assert report.checkpoints_copied == total
        assert migrate(saver, official).checkpoints_copied == 0
        assert verify(saver, official).ok
        # And back from the official storage into a fresh saver: what it holds, unchanged.
        with ours.open_sync() as again:
            migrate(official, again)
            assert assert_same_storage(official, again, work) == total
            assert verify(official, again).ok
        resume_both(saver, official, work)


def _stored_values(kind: str, official: Any) -> set[tuple[str, str, bytes]]:
    """(channel, type, bytes) of the values the official storage holds, as stored."""
    if kind == "postgres":
        with official._cursor() as cur:
            cur.execute("SELECT channel, type, blob FROM checkpoint_blobs WHERE type <> 'empty'")
            return {(r["channel"], r["type"], bytes(r["blob"])) for r in cur.fetchall()}
    rows = official.conn.execute("SELECT channel, type, value FROM writes").fetchall()
    return {(channel, type_, value or b"") for channel, type_, value in rows}


def _assert_tags_kept(kind: str, official: Any, saver: Any, thread_ids: list[str]) -> None:
    side = as_side(saver)
    ours: set[tuple[str, str, bytes]] = set()
    for thread_id in thread_ids:
        for row in side.run(side.read_thread(thread_id)):
            ours |= {(b.channel, b.type, b.data) for b in row.blobs}
            ours |= {(w.channel, w.type, w.data) for w in row.writes}
    stored = _stored_values(kind, official)
    assert stored, "the official storage holds no values to compare"
    assert stored <= ours, "some values were re-encoded on the way"


@needs_async_interrupts  # the workload's graphs interrupt
@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_official_async_savers_both_ways(kind: str) -> None:
    target = _official(kind)
    assert target.official_async is not None and target.open_async is not None
    async with target.official_async() as official, target.open_async() as saver:
        assert as_side(official).exact
        work = await afill(official)
        await amigrate(official, saver, batch=3)
        await aassert_same_storage(official, saver, work)
        assert (await averify(official, saver)).ok
        back = await afill(saver, prefix="back")
        await amigrate(saver, official, threads=back.thread_ids)
        await aassert_same_storage(saver, official, back)
        assert (await averify(saver, official, threads=back.thread_ids)).ok
        await aresume_both(official, saver, work)


@pytest.mark.parametrize("ours", OURS, ids=lambda t: t.name)
def test_any_saver_through_its_public_api(ours: Target) -> None:
    assert ours.open_sync is not None
    official = InMemorySaver()
    with ours.open_sync() as saver:
        assert isinstance(as_side(official), ApiSide)
        work = fill(official)
        migrate(official, saver)
        assert_same_storage(official, saver, work)
        assert verify(official, saver).ok
        mine = fill(saver, prefix="mine")
        other = InMemorySaver()
        migrate(saver, other, threads=mine.thread_ids)
        assert_same_storage(saver, other, mine)
        assert verify(saver, other, threads=mine.thread_ids).ok
        assert migrate(saver, other, threads=mine.thread_ids).checkpoints_copied == 0
        resume_both(official, saver, work)
        resume_both(saver, other, mine)


@contextmanager
def _subclassed_official_sqlite() -> Iterator[Any]:
    from langgraph.checkpoint.sqlite import SqliteSaver

    class Custom(SqliteSaver):
        """A third-party subclass: may store differently, so only its API is trusted."""

    with sqlite3.connect(":memory:", check_same_thread=False) as conn:
        yield Custom(conn)


def test_subclass_of_an_official_saver_goes_through_its_api() -> None:
    memory = _memory_target()
    assert memory.open_sync is not None
    with _subclassed_official_sqlite() as custom, memory.open_sync() as saver:
        assert isinstance(as_side(custom), ApiSide)
        work = fill(custom)
        migrate(custom, saver)
        assert_same_storage(custom, saver, work)
        assert verify(custom, saver).ok
        resume_both(custom, saver, work)


@needs_async_interrupts  # the workload's graphs interrupt
async def test_any_saver_through_its_async_api() -> None:
    memory = _memory_target()
    assert memory.open_async is not None
    official = InMemorySaver()
    async with memory.open_async() as saver:
        work = await afill(official)
        await amigrate(official, saver)
        await aassert_same_storage(official, saver, work)
        assert (await averify(official, saver)).ok
        mine = await afill(saver, prefix="mine")
        other = InMemorySaver()
        await amigrate(saver, other, threads=mine.thread_ids)
        await aassert_same_storage(saver, other, mine)
        await aresume_both(official, saver, work)


async def test_a_sync_only_official_saver_in_amigrate() -> None:
    memory = _memory_target()
    assert memory.open_async is not None
    with _subclassed_official_sqlite() as custom:  # its async methods raise NotImplementedError
        work = fill(custom)
        async with memory.open_async() as saver:
            await amigrate(custom, saver)
            assert_same_storage(custom, saver, work)  # the memory saver has both flavors
