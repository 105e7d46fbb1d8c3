"""A SQLite database opened read-only (`read_only=True`, `?read_only=true`): every read works,
nothing in the file changes, and a write or a needed migration fails naming why.

The file system cases (a read-only mount, with and without the -shm file of a database in
use) mount a small tmpfs and remount it read-only: root only, as for tests/sqlite/test_compact.py.
"""

from __future__ import annotations

import hashlib
import operator
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.graph import START, StateGraph

from checkpoint_base import ConfigError, StorageError, aconnect, connect
from checkpoint_base._cli import main
from checkpoint_sqlite import AsyncSqliteSaver, SqliteSaver
from tests.conformance.builders import checkpoint, config


class _State(TypedDict):
    log: Annotated[list[int], operator.add]


def _graph() -> StateGraph[Any]:
    builder = StateGraph(_State)
    builder.add_node("step", lambda state: {"log": [len(state["log"]) + 1]})
    builder.add_edge(START, "step")
    return builder


_THREAD = {"configurable": {"thread_id": "read-only"}}


def _fill(path: Path) -> list[Any]:
    """Three turns of a graph, and a checkpoint with a pending write; what `list` gives."""
    with connect(f"sqlite:///{path}") as saver:
        graph = _graph().compile(checkpointer=saver)
        for _ in range(3):
            graph.invoke({"log": []}, _THREAD)
        stored = saver.put(config("other"), checkpoint({"a": 1}), {"step": 7}, {"a": 1})
        saver.put_writes(stored, [("a", 2)], "task-1")
        return list(saver.list(None))


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _same(listed: list[Any], expected: list[Any]) -> None:
    assert [t.config for t in listed] == [t.config for t in expected]
    assert [t.checkpoint for t in listed] == [t.checkpoint for t in expected]
    assert [t.pending_writes for t in listed] == [t.pending_writes for t in expected]


def _refuses_writes(saver: SqliteSaver) -> None:
    for write in (
        lambda: saver.put(config("new"), checkpoint({"a": 1}), {}, {"a": 1}),
        lambda: saver.delete_thread("other"),
    ):
        with pytest.raises(StorageError, match="this connection may only read"):
            write()


def test_a_read_only_saver_reads_everything_and_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    expected = _fill(path)
    before = _digest(path)
    with SqliteSaver.from_conn_string(str(path), read_only=True) as saver:
        _same(list(saver.list(None)), expected)
        latest = saver.get_tuple(config("other"))
        assert latest is not None and latest.pending_writes == [("task-1", "a", 2)]
        graph = _graph().compile(checkpointer=saver)
        assert graph.get_state(_THREAD).values == {"log": [1, 2, 3]}
        assert len(list(graph.get_state_history(_THREAD))) == 9
        _refuses_writes(saver)
        with pytest.raises(StorageError, match="this connection may only read"):
            graph.invoke({"log": []}, _THREAD)
    assert _digest(path) == before


async def test_an_async_read_only_saver_reads_everything_and_changes_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "app.db"
    expected = _fill(path)
    before = _digest(path)
    async with aconnect(f"sqlite:///{path}?read_only=true") as saver:
        assert isinstance(saver, AsyncSqliteSaver)
        _same([t async for t in saver.alist(None)], expected)
        graph = _graph().compile(checkpointer=saver)
        assert (await graph.aget_state(_THREAD)).values == {"log": [1, 2, 3]}
        with pytest.raises(StorageError, match="this connection may only read"):
            await saver.aput(config("new"), checkpoint({"a": 1}), {}, {"a": 1})
        with pytest.raises(StorageError, match="this connection may only read"):
            await graph.ainvoke({"log": []}, _THREAD)
    assert _digest(path) == before


def _empty_file(tmp_path: Path) -> Path:
    path = tmp_path / "empty.db"
    sqlite3.connect(path).close()  # a file, with no table yet
    return path


def _tables(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0])


def test_setup_of_a_database_that_needs_its_tables_fails_read_only(tmp_path: Path) -> None:
    path = _empty_file(tmp_path)
    saver = SqliteSaver.open(str(path), read_only=True)
    try:
        with pytest.raises(StorageError, match=r"setup\(\) of a database whose schema"):
            saver.setup()
    finally:
        saver.close()
    assert _tables(path) == 0


async def test_async_setup_of_a_database_that_needs_its_tables_fails_read_only(
    tmp_path: Path,
) -> None:
    path = _empty_file(tmp_path)
    saver = await AsyncSqliteSaver.open(str(path), read_only=True)
    try:
        with pytest.raises(StorageError, match=r"setup\(\) of a database whose schema"):
            await saver.asetup()
    finally:
        await saver.aclose()
    assert _tables(path) == 0


@pytest.mark.parametrize(
    ("url", "kwargs", "says"),
    [
        ("sqlite:///{dir}/missing.db?read_only=true", {}, "it does not exist (read_only opens"),
        ("sqlite:///{dir}/missing.db", {"read_only": True}, "it does not exist (read_only opens"),
        ("sqlite:///:memory:?read_only=true", {}, "read_only=true on an in-memory"),
        ("sqlite:///{dir}/a.db?read_only=perhaps", {}, "must be true or false, got 'perhaps'"),
        ("sqlite:///{dir}/a.db?read_only=true", {"read_only": False}, "read_only is given twice"),
    ],
)
def test_bad_read_only_options_are_refused(
    tmp_path: Path, url: str, kwargs: dict[str, Any], says: str
) -> None:
    target = url.format(dir=tmp_path)
    with pytest.raises(ConfigError) as caught, connect(target, **kwargs):
        pass
    assert says in str(caught.value)
    assert not (tmp_path / "missing.db").exists()  # nothing created


def test_a_read_only_saver_does_not_sweep(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    _fill(path)
    with connect(f"sqlite:///{path}") as writable:
        assert writable.read_only is False
    with connect(f"sqlite:///{path}?read_only=true") as saver:
        assert saver.read_only is True
        with pytest.raises(ConfigError, match="opened read-only: it cannot delete idle"):
            saver.sweep_idle_threads(60)
    with (
        pytest.raises(ConfigError, match="drop ttl="),
        connect(f"sqlite:///{path}?read_only=true&ttl=60"),
    ):
        pass


async def test_async_open_of_a_missing_file_read_only_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="it does not exist"):
        async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "missing.db"), read_only=True):
            pass
    assert _names(tmp_path) == []


def _names(where: Path) -> list[str]:
    return sorted(p.name for p in where.iterdir())


# -- a read-only mount ---------------------------------------------------------------------


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, timeout=30)


@pytest.fixture
def read_only_mount(tmp_path: Path) -> Iterator[tuple[Path, list[Any]]]:
    """A tmpfs holding a filled database, remounted read-only; what `list` gave."""
    where = tmp_path / "ro"
    where.mkdir()
    try:
        _mount("-t", "tmpfs", "-o", "size=4m", "tmpfs", str(where))
    except (OSError, subprocess.SubprocessError):
        pytest.skip("mounting a tmpfs (the read-only medium) needs root")
    try:
        expected = _fill(where / "app.db")
        yield where, expected
    finally:
        subprocess.run(["umount", str(where)], check=False, capture_output=True, timeout=30)


def _remount_read_only(where: Path) -> None:
    _mount("-o", "remount,ro", str(where))


def test_a_file_on_a_read_only_mount_points_at_read_only(
    read_only_mount: tuple[Path, list[Any]],
) -> None:
    where, _ = read_only_mount
    _remount_read_only(where)
    with pytest.raises(ConfigError) as caught, connect(f"sqlite:///{where}/app.db"):
        pass
    assert "may not read and write it" in str(caught.value)
    assert "?read_only=true" in str(caught.value)
    # No process has it open: no -shm file, and none can be made there.
    with pytest.raises(ConfigError) as unread, connect(f"sqlite:///{where}/app.db?read_only=true"):
        pass
    assert "-shm file, which does not exist" in str(unread.value)
    assert "read a copy" in str(unread.value)


def test_a_database_in_use_on_a_read_only_mount_reads(
    read_only_mount: tuple[Path, list[Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    where, expected = read_only_mount
    for part in ("-shm", "-wal"):  # as while the application has it open
        (where / f"app.db{part}").touch()
    _remount_read_only(where)
    with SqliteSaver.from_conn_string(str(where / "app.db"), read_only=True) as saver:
        _same(list(saver.list(None)), expected)
        _refuses_writes(saver)
    # The command line reads such a file without being told; a change fails in one line.
    capsys.readouterr()
    assert main(["threads", f"sqlite:///{where}/app.db"]) == 0
    out = capsys.readouterr().out
    assert "read-only" in out and "other" in out
    assert main(["delete", f"sqlite:///{where}/app.db", "--thread", "other"]) != 0
    # SQLite opens a file it may not write read-only (its -shm there): the write says so
    assert "this connection may only read" in capsys.readouterr().err
