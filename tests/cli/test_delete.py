"""`checkpointers delete`: whole threads, named or idle, on every backend."""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from checkpoint_base import _cli_delete, _operations, connect
from checkpoint_base._cli_delete import delete_idle
from checkpoint_base._cli_open import open_side
from checkpoint_base._demo import build_demo_graph

from .conftest import Cli, assert_one_line_error

IDLE = 1.2
"""Seconds between the old threads' last write and the new ones' (`--idle 1s`)."""


def _write(url: str, *thread_ids: str) -> None:
    """A real graph turn on each thread (the demo agent, which stops for approval)."""
    with connect(url) as saver:
        graph = build_demo_graph(saver)
        for thread_id in thread_ids:
            config = {"configurable": {"thread_id": thread_id}}
            graph.invoke({"messages": [("user", "What is 6 * 7?")]}, config)


def _threads(url: str) -> set[str]:
    with connect(url) as saver:
        return {t.thread_id for t in saver.list_threads(limit=1000)}


def _checkpoints(url: str, thread_id: str) -> int:
    with connect(url) as saver:
        return len(list(saver.list({"configurable": {"thread_id": thread_id}})))


def _old_and_new(url: str) -> tuple[list[str], list[str]]:
    tag = uuid.uuid4().hex[:6]
    old, new = [f"old-{tag}-{i}" for i in range(3)], [f"new-{tag}-{i}" for i in range(2)]
    _write(url, *old)
    time.sleep(IDLE)
    _write(url, *new)
    return old, new


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'threads.db'}"


def test_idle_threads_go_and_active_ones_stay(cli: Cli, sqlite_url: str) -> None:
    old, new = _old_and_new(sqlite_url)
    counts = {t: _checkpoints(sqlite_url, t) for t in old}
    assert all(n > 1 for n in counts.values())

    dry = cli("delete", sqlite_url, "--idle", "1s", "--dry-run")
    assert dry.status == 0, dry.err
    assert f"would delete 3 threads idle for more than 1s ({sum(counts.values())} " in dry.out
    assert all(t in dry.out for t in old) and not any(t in dry.out for t in new)
    assert _threads(sqlite_url) == {*old, *new}  # a dry run deletes nothing

    done = cli("delete", sqlite_url, "--idle", "1s")
    assert done.status == 0, done.err
    assert f"deleted 3 threads idle for more than 1s ({sum(counts.values())} checkpoints)" in (
        done.out
    )
    assert _threads(sqlite_url) == set(new)
    assert all(_checkpoints(sqlite_url, t) == 0 for t in old)
    assert all(_checkpoints(sqlite_url, t) > 1 for t in new)

    again = cli("delete", sqlite_url, "--idle", "1h")
    assert again.status == 0 and "deleted 0 threads" in again.out
    assert _threads(sqlite_url) == set(new)


def test_a_thread_written_to_after_the_listing_is_kept(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, _ = _old_and_new(sqlite_url)
    cutoff = time.time() - IDLE / 2
    real_settle = _operations.settle_idle
    resumed: list[str] = []

    def settle(backend, thread_id, *args, **kwargs):  # type: ignore[no-untyped-def]
        if thread_id == old[2] and not resumed:
            # The graph resumes the thread after the page listing it was read.
            _write(sqlite_url, thread_id)
            resumed.append(thread_id)
        return real_settle(backend, thread_id, *args, **kwargs)

    monkeypatch.setattr(_operations, "settle_idle", settle)
    with open_side(sqlite_url, write=True) as side:
        result = delete_idle(side, cutoff)
    assert resumed == [old[2]]
    assert result.written_since == [old[2]]
    assert sorted(t.thread_id for t in result.deleted) == sorted(old[:2])
    assert result.looked_at == 3
    assert old[2] in _threads(sqlite_url)
    assert not {*old[:2]} & _threads(sqlite_url)


def test_named_threads(cli: Cli, sqlite_url: str) -> None:
    old, new = _old_and_new(sqlite_url)
    result = cli("delete", sqlite_url, "--thread", old[0], "--thread", new[0])
    assert result.status == 0, result.err
    assert "deleted 2 threads of 2 named" in result.out
    assert _threads(sqlite_url) == {*old[1:], *new[1:]}
    # Named and idle: only the named ones that are idle go.
    result = cli("delete", sqlite_url, "--thread", old[1], "--thread", new[1], "--idle", "1s")
    assert result.status == 0, result.err
    assert "deleted 1 thread of 2 named idle for more than 1s" in result.out
    assert _threads(sqlite_url) == {old[2], new[1]}


def test_errors_are_one_line(cli: Cli, sqlite_url: str, tmp_path: Path) -> None:
    _write(sqlite_url, "t1")
    assert_one_line_error(cli("delete", sqlite_url), "--thread ID", "--idle DURATION")
    assert_one_line_error(cli("delete", sqlite_url, "--thread", "nope"), "no thread 'nope'")
    assert_one_line_error(cli("delete", sqlite_url, "--idle", "soon"), "soon")
    official = tmp_path / "official.db"
    assert cli("migrate", sqlite_url, f"langgraph-sqlite:///{official}").status == 0
    result = cli("delete", f"langgraph-sqlite:///{official}", "--idle", "1s")
    assert_one_line_error(result, "delete works on savers of this package")
    assert _threads(sqlite_url) == {"t1"}


@pytest.fixture(params=["postgres", "redis", "redis-cluster"])
def server_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A store of its own on each backend, so that `--idle` sees only this test's threads."""
    yield from _store_of_its_own(request.param)


def _store_of_its_own(kind: str) -> Iterator[str]:
    servers = pytest.importorskip("checkpoint_base.testing.servers")
    if kind == "postgres":
        import psycopg
        from psycopg import sql

        base = servers.postgres_url()
        dbname = f"cli_delete_{uuid.uuid4().hex[:8]}"
        name = sql.Identifier(dbname)
        with psycopg.connect(base, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(name))
        try:
            yield urlunsplit(urlsplit(base)._replace(path="/" + dbname))
        finally:
            with psycopg.connect(base, autocommit=True) as admin:
                admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(name))
        return
    base = servers.redis_url() if kind == "redis" else servers.redis_cluster_url()
    prefix = f"clidelete{uuid.uuid4().hex[:8]}"
    yield base + ("&" if "?" in base else "?") + f"key_prefix={prefix}"
    from checkpoint_redis._testing import drop_prefix

    drop_prefix(base, prefix)


def test_idle_threads_on_every_server(cli: Cli, server_url: str) -> None:
    old, new = _old_and_new(server_url)
    result = cli("delete", server_url, "--idle", "1s")
    assert result.status == 0, result.err
    assert "deleted 3 threads idle for more than 1s" in result.out
    assert _threads(server_url) == set(new)
    assert all(_checkpoints(server_url, t) == 0 for t in old)
    assert all(_checkpoints(server_url, t) > 1 for t in new)


def test_long_runs_show_progress(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _old_and_new(sqlite_url)
    monkeypatch.setattr(_cli_delete, "_EVERY", 0.0)  # a line per thread instead of per 5 s
    lines = io.StringIO()
    with open_side(sqlite_url, write=True) as side:
        result = delete_idle(side, time.time() - IDLE / 2, progress=lines)
    assert len(result.deleted) == 3
    shown = lines.getvalue().splitlines()
    assert [line.split(" (")[0] for line in shown] == [
        "deleted 0 threads, 0 idle of 5 listed",  # the page, before its threads are looked at
        "deleted 1 thread, 1 idle of 5 listed",
        "deleted 2 threads, 2 idle of 5 listed",
        "deleted 3 threads, 3 idle of 5 listed",
    ]


def _orphan_writes(url: str, thread_id: str) -> None:
    """A thread deleted while its graph still ran: the graph's last writes land after."""
    _write(url, thread_id)
    with connect(url) as saver:
        latest = saver.get_tuple({"configurable": {"thread_id": thread_id}})
        assert latest is not None
        saver.delete_thread(thread_id)
        saver.put_writes(latest.config, [("messages", "late")], "task-late")


@pytest.fixture(params=["sqlite", "postgres", "redis", "redis-cluster"])
def any_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'threads.db'}"
    else:
        yield from _store_of_its_own(request.param)


def test_writes_left_by_a_deleted_thread_are_listed_and_go_when_idle(
    cli: Cli, any_url: str
) -> None:
    tag = uuid.uuid4().hex[:6]
    orphan, kept = f"orphan-{tag}", f"kept-{tag}"
    _orphan_writes(any_url, orphan)
    time.sleep(IDLE)
    _write(any_url, kept)

    shown = cli("threads", any_url)
    assert shown.status == 0, shown.err
    line = next(row for row in shown.out.splitlines() if row.startswith(orphan))
    assert line.split()[1] == "0", line
    assert "0 checkpoints: writes only, stored by a graph still running" in shown.out

    done = cli("delete", any_url, "--idle", "1s")
    assert done.status == 0, done.err
    assert "deleted 1 thread idle for more than 1s (0 checkpoints)" in done.out, done.out
    assert _threads(any_url) == {kept}


def test_a_thread_of_writes_only_can_be_named(cli: Cli, sqlite_url: str) -> None:
    _orphan_writes(sqlite_url, "orphan")
    _write(sqlite_url, "other")
    assert _threads(sqlite_url) == {"orphan", "other"}
    result = cli("delete", sqlite_url, "--thread", "orphan")
    assert result.status == 0, result.err
    assert "deleted 1 thread of 1 named" in result.out
    assert _threads(sqlite_url) == {"other"}
    assert_one_line_error(cli("delete", sqlite_url, "--thread", "orphan"), "no thread 'orphan'")


def test_a_thread_of_writes_only_is_named_for_what_it_is(cli: Cli, sqlite_url: str) -> None:
    _orphan_writes(sqlite_url, "orphan")
    for argv in (
        ("history", sqlite_url, "orphan"),
        ("show", sqlite_url, "orphan"),
        ("prune", sqlite_url, "--keep-last", "1", "--thread", "orphan"),
    ):
        assert_one_line_error(
            cli(*argv),
            "thread 'orphan' has no checkpoint",
            "checkpointers delete URL --thread orphan",
        )
    assert_one_line_error(cli("history", sqlite_url, "nope"), "no thread 'nope'")
