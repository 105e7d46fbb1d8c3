"""compact() on SQLite: when the temporary directory has no room for the copy of the data, and
when a reader keeps the WAL from being emptied."""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from checkpoint_base import aconnect, connect
from tests.conformance.builders import checkpoint, config

_VALUE = 250_000

_COMPACT = textwrap.dedent(
    """
    import logging, sys
    from checkpoint_base import StorageUnavailableError, connect
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    with connect(sys.argv[1]) as saver:
        try:
            done = saver.compact()
        except StorageUnavailableError as exc:
            print(exc)
            sys.exit(3)
        print(done.before.size, done.after.size)
    """
)


@pytest.fixture
def full_tmp(tmp_path: Path) -> Iterator[Path]:
    """A 1 MB temporary directory, mounted for the test (root only)."""
    small = tmp_path / "small"
    small.mkdir()
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)],
            check=True,
            capture_output=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        pytest.skip("mounting a 1 MB tmpfs (the full temporary directory) needs root")
    try:
        yield small
    finally:
        subprocess.run(["umount", str(small)], check=False, capture_output=True, timeout=30)


def _store(path: Path, threads: int) -> str:
    url = f"sqlite:///{path}"
    with connect(url) as saver:
        for i in range(threads):
            saver.put(config(f"t{i}"), checkpoint({"v": os.urandom(_VALUE)}), {}, {"v": 1})
        saver.delete_thread("t0")
    return url


def _compact(url: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SQLITE_TMPDIR": str(tmp)}
    return subprocess.run(
        [sys.executable, "-c", _COMPACT, url], env=env, capture_output=True, text=True, timeout=120
    )


def _intact(url: str, threads: int) -> None:
    with connect(url) as saver:
        for i in range(1, threads):
            got = saver.get_tuple(config(f"t{i}"))
            assert got is not None and len(got.checkpoint["channel_values"]["v"]) == _VALUE


def test_no_room_for_the_copy_says_where_it_goes(tmp_path: Path, full_tmp: Path) -> None:
    """SQLite says only "database or disk is full", though the database's own disk has room:
    the error names the temporary directory and how much the copy needs, and nothing
    changed. (15 MB of live data: more than SQLite's page cache holds.)"""
    db = tmp_path / "big.db"
    url = _store(db, 60)
    size = db.stat().st_size
    run = _compact(url, full_tmp)
    assert run.returncode == 3, (run.stdout, run.stderr)
    message = run.stdout
    assert "database or disk is full" in message and "SQLITE_TMPDIR" in message, message
    needed = re.search(r"a copy of the live data \(([\d.]+) MB\)", message)
    assert needed is not None and 59 * 0.25 <= float(needed.group(1)) < 59 * 0.25 + 1, message
    assert message.rstrip().endswith("The database is unchanged."), message
    assert db.stat().st_size == size
    _intact(url, 60)


def test_compacted_before_the_temporary_directory_filled(tmp_path: Path, full_tmp: Path) -> None:
    """With a copy that fits SQLite's page cache, VACUUM commits the compacted file and then
    reports the full directory; the compaction stands and says so in a warning."""
    db = tmp_path / "small.db"
    url = _store(db, 12)
    run = _compact(url, full_tmp)
    assert run.returncode == 0, (run.stdout, run.stderr)
    before, after = map(int, run.stdout.split())
    assert after <= before - _VALUE * 0.9  # the deleted thread's pages
    assert "SQLite compacted the database, then reported: SQLite: database or disk is full" in (
        run.stderr
    )
    assert db.stat().st_size == after
    _intact(url, 12)


def _files(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def _filled(url: str, threads: int) -> None:
    with connect(url) as saver:
        for i in range(threads):
            saver.put(config(f"t{i}"), checkpoint({"b": os.urandom(20_000)}), {}, {"b": 1})
        for i in range(1, threads):
            saver.delete_thread(f"t{i}")


def test_a_reader_that_holds_the_wal_is_named(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    _filled(f"sqlite:///{path}", 30)
    with connect(f"sqlite:///{path}?timeout=0.3") as saver:
        reader = sqlite3.connect(path, isolation_level=None)
        try:
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM sqlite_master").fetchall()  # holds a snapshot
            held = saver.compact()
            on_disk = _files(path)
        finally:
            reader.close()
        assert len(held.held) == 1 and "kept SQLite from emptying its WAL" in held.held[0], held
        assert held.after.size is not None and held.after.size < 200_000  # the live data
        assert on_disk > 20 * 20_000  # the compacted pages wait in the WAL beside the old file
        done = saver.compact()
        assert done.held == () and _files(path) == done.after.size < 200_000, done
        assert saver.get_tuple(config("t0")) is not None


def test_async_compact_names_the_reader_too(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    _filled(f"sqlite:///{path}", 10)

    async def main() -> None:
        async with aconnect(f"sqlite:///{path}?timeout=0.3") as saver:
            reader = sqlite3.connect(path, isolation_level=None)
            try:
                reader.execute("BEGIN")
                reader.execute("SELECT count(*) FROM sqlite_master").fetchall()
                held = await saver.acompact()
            finally:
                reader.close()
            assert len(held.held) == 1 and "WAL" in held.held[0], held
            assert (await saver.acompact()).held == ()

    asyncio.run(main())
