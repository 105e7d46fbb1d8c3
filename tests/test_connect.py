"""connect() / aconnect(): schemes, entry points, clear errors."""

from __future__ import annotations

import asyncio
import datetime
import importlib.metadata
import os
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from checkpoint_base import (
    CheckpointSaver,
    ConfigError,
    MemorySaver,
    MissingDriverError,
    UnknownBackendError,
    _convert,
    aconnect,
    connect,
    installed_schemes,
)
from checkpoint_base._connect import _entry
from checkpoint_sqlite import SqliteSaver


def test_every_documented_scheme_is_registered() -> None:
    assert {
        "memory",
        "sqlite",
        "postgres",
        "postgresql",
        "redis",
        "rediss",
        "redis+cluster",
        "redis+sentinel",
        "unix",
    } <= set(installed_schemes())


def test_memory_url_gives_a_ready_saver() -> None:
    with connect("memory://") as saver:
        assert isinstance(saver, MemorySaver)
        assert isinstance(saver, CheckpointSaver)
        cfg = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
        assert saver.get_tuple(cfg) is None


async def test_aconnect_as_context_manager_and_awaitable() -> None:
    async with aconnect("memory://") as saver:
        assert isinstance(saver, MemorySaver)
    saver2 = await aconnect("memory://")
    assert isinstance(saver2, MemorySaver)
    await saver2.aclose()


@pytest.mark.parametrize("url", ["nosuch://x", "mysql://localhost/db", "mysql://me:pw1@db/app"])
def test_unknown_scheme_lists_installed(url: str) -> None:
    with pytest.raises(UnknownBackendError) as info:
        connect(url)
    message = str(info.value)
    assert url.split("://")[0] in message
    assert "memory" in message and "sqlite" in message
    assert "pw1" not in message  # the URL is shown with its password hidden


@pytest.mark.parametrize("url", ["", "checkpoints.db", "just text"])
def test_not_a_url(url: str) -> None:
    with pytest.raises(UnknownBackendError, match="scheme://"):
        connect(url)


def test_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.metadata.entry_points

    def fake_entry_points(**kwargs: object) -> object:
        found = real(**kwargs)  # type: ignore[arg-type]
        if kwargs.get("group") != "checkpointers.backends":
            return found
        broken = importlib.metadata.EntryPoint(
            name="postgresql",
            value="checkpoint_nosuchdriver._entry:BACKEND",
            group="checkpointers.backends",
        )
        return [broken]

    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points)
    with pytest.raises(MissingDriverError, match=r"pip install 'checkpointers\[nosuchdriver\]'"):
        _entry("postgresql://localhost/db")
    assert issubclass(MissingDriverError, ImportError)


@pytest.mark.parametrize(
    ("url", "option", "needle"),
    [
        ("sqlite:///{tmp}/ttl.db", "refresh_on_read", "it is an option of Redis savers"),
        ("memory://", "schema", "it is an option of PostgreSQL savers"),
        ("memory://", "read_only", "it is an option of SQLite savers"),
        ("memory://", "no_such_option", "see the saver class's documentation"),
    ],
)
async def test_an_option_the_backend_does_not_take_is_named(
    url: str, option: str, needle: str, tmp_path: Path
) -> None:
    url = url.format(tmp=tmp_path)
    message = f"{url.split('://')[0]}:// savers take no option '{option}'"

    async def open_async() -> None:
        async with aconnect(url, **{option: 1}):
            pass

    with pytest.raises(ConfigError, match=message) as sync_error:
        connect(url, **{option: 1})
    with pytest.raises(ConfigError, match=message) as async_error:
        await open_async()
    for caught in (sync_error, async_error):
        assert needle in str(caught.value)
        assert isinstance(caught.value.__cause__, TypeError)


def test_memory_url_takes_no_options_but_the_sweeps() -> None:
    for url in ("memory://", "memory:///"):
        connect(url).close()
    with connect("memory://?ttl=5") as saver:  # connect's own option (see below)
        assert [s.idle for s in saver._sweepers] == [5.0]
    for url in ("memory://?size=5", "memory://name", "memory://name?ttl=5"):
        with pytest.raises(ConfigError, match="memory:// takes nothing after the scheme"):
            connect(url)


def _put_one(saver: CheckpointSaver, thread_id: str) -> None:
    from langgraph.checkpoint.base import empty_checkpoint

    cfg = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
    saver.put(cfg, empty_checkpoint(), {}, {})


async def _old_thread_swept(saver: Any, sweeper: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A thread written two hours ago is swept; one written now stays."""
    with monkeypatch.context() as m:
        m.setattr(_convert, "time", SimpleNamespace(time=lambda: time.time() - 7200))
        _put_one(saver, "old")
    _put_one(saver, "new")
    deadline = time.monotonic() + 20
    while sweeper.deleted < 1:
        assert time.monotonic() < deadline, "the idle thread was not swept"
        await asyncio.sleep(0.01)
    assert [t.thread_id for t in saver.list_threads()] == ["new"]


@pytest.mark.parametrize("url", ["memory://", "sqlite:///{tmp}/swept.db"])
async def test_ttl_sweeps_idle_threads_while_the_saver_is_open(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = url.format(tmp=tmp_path)
    with connect(url, ttl=datetime.timedelta(hours=1), sweep_every=0.05) as saver:
        (sweeper,) = saver._sweepers
        assert (sweeper.idle, sweeper.every) == (3600.0, 0.05)
        await _old_thread_swept(saver, sweeper, monkeypatch)
        assert sweeper._thread is not None and sweeper._thread.is_alive()
    assert sweeper.stopped and not sweeper._thread.is_alive()

    async with aconnect(url, ttl=7200) as asaver:
        (asweeper,) = asaver._sweepers
        assert asweeper.every == 720.0 and not asweeper.stopped
        assert asweeper.strategy == "delete"
    assert asweeper.stopped
    with connect(url, ttl=60, ttl_strategy="keep_latest") as saver:
        (sweeper,) = saver._sweepers
        assert sweeper.strategy == "keep_latest" and not sweeper.stopped


@pytest.mark.parametrize("url", ["memory://", "sqlite:///{tmp}/url-swept.db"])
async def test_a_url_says_how_long_idle_threads_live(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`?ttl=` (and `sweep_every`, `ttl_strategy`) in the URL of a swept backend, so that one
    URL (an environment variable) configures the sweeping too."""
    url = url.format(tmp=tmp_path)
    with connect(url + "?ttl=3600&sweep_every=0.05") as saver:
        (sweeper,) = saver._sweepers
        assert (sweeper.idle, sweeper.every, sweeper.strategy) == (3600.0, 0.05, "delete")
        await _old_thread_swept(saver, sweeper, monkeypatch)
    async with aconnect(url + "?ttl_strategy=keep_latest&ttl=60") as asaver:
        (asweeper,) = asaver._sweepers
        assert (asweeper.idle, asweeper.every, asweeper.strategy) == (60.0, 6.0, "keep_latest")


def test_a_url_keeps_its_other_options_for_the_backend(tmp_path: Path) -> None:
    path = tmp_path / "full.db"
    with connect(f"sqlite:///{path}?synchronous=full&ttl=60&timeout=7") as saver:
        assert [s.idle for s in saver._sweepers] == [60.0]
        options = saver._executor._options  # type: ignore[attr-defined]
        assert (options.synchronous, options.timeout) == ("full", 7.0)
    with pytest.raises(ConfigError, match="unknown option 'cache' in SQLite URL"):
        connect(f"sqlite:///{path}?ttl=60&cache=shared")
    # The saver classes take no sweep options: connect() does, and their error says so.
    with pytest.raises(ConfigError, match=r"read by checkpoint_base\.connect\(url\)"):
        SqliteSaver.open(f"sqlite:///{path}?ttl=60")


def test_a_postgres_url_may_carry_ttl_and_schema() -> None:
    from checkpoint_base.testing import servers

    url = servers.postgres_url()
    schema = f"url_ttl_{os.getpid()}"
    sep = "&" if "?" in url else "?"
    with connect(f"{url}{sep}ttl=120&schema={schema}") as saver:
        assert [s.idle for s in saver._sweepers] == [120.0]
        assert saver.backend.schema == schema
        _put_one(saver, "pg")
        assert saver.get_tuple({"configurable": {"thread_id": "pg"}}) is not None
        saver.delete_thread("pg")


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_savers_sharing_a_database_sweep_it_in_turn(backend: str, tmp_path: Path) -> None:
    """Every process that opens a saver with a time to live sweeps, and a sweep lists every
    thread: savers of one database take turns by a lease kept in it, so that it is swept once
    per interval, not once per saver."""
    schema = None
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path}/shared.db"
    else:
        from checkpoint_base.testing import servers
        from checkpoint_postgres._testing import fresh_schema

        schema = fresh_schema("lease")
        base = servers.postgres_url()
        url = f"{base}{'&' if '?' in base else '?'}schema={schema}"

    def first_turn(saver: Any) -> Any:
        (sweeper,) = saver._sweepers
        deadline = time.monotonic() + 20
        while sweeper.sweeps + sweeper.skipped == 0:
            assert time.monotonic() < deadline, "the sweeper did not take its first turn"
            time.sleep(0.01)
        assert sweeper.last_error is None
        return sweeper

    try:
        with connect(url, ttl=3600, sweep_every=3600) as first:
            _put_one(first, "kept")
            swept = first_turn(first)
            assert (swept.sweeps, swept.skipped) == (1, 0)  # at once
            with connect(url, ttl=3600, sweep_every=3600) as second:
                left = first_turn(second)
                assert (left.sweeps, left.skipped) == (0, 1)  # the first's lease runs an hour
            with connect(url, ttl=7200, sweep_every=3600) as third:
                other = first_turn(third)  # another time to live: another lease
                assert (other.sweeps, other.skipped) == (1, 0)
            assert [t.thread_id for t in first.list_threads()] == ["kept"]
    finally:
        if schema is not None:
            from checkpoint_postgres._testing import drop_schema

            drop_schema(servers.postgres_url(), schema)


def test_a_redis_url_keeps_its_ttl_for_the_saver() -> None:
    from checkpoint_base.testing import servers

    url = servers.redis_url()
    sep = "&" if "?" in url else "?"
    with connect(f"{url}{sep}ttl=120") as saver:
        assert saver._sweepers == []  # Redis expires the keys itself
        assert saver.backend.ttl_ms == 120_000


async def test_sweep_options_in_a_url_are_checked(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/never.db"
    for query, options, needle in (
        ("?ttl=abc", {}, "ttl='abc' in the URL is not a number of seconds"),
        ("?ttl=0", {}, "ttl must be a positive duration"),
        ("?ttl=inf", {}, "ttl must be a finite duration"),
        ("?ttl=1&ttl=2", {}, "the URL gives ttl= twice"),
        ("?ttl=60", {"ttl": 30}, r"ttl is given twice, in the URL \(ttl=60\) and as an argument"),
        ("?ttl=60&ttl_strategy=keep_latest", {"ttl_strategy": "delete"}, None),
        ("?ttl_strategy=keep_latest", {"ttl": 5, "ttl_strategy": "keep_latest"}, "given twice"),
        ("?sweep_every=5", {}, "sweep_every= goes with ttl="),
        ("?ttl=60&ttl_strategy=latest", {}, "unknown ttl_strategy 'latest'"),
    ):
        if needle is None:  # "delete" is the default: the URL's strategy stands
            with connect(url + query, **options) as saver:
                assert saver._sweepers[0].strategy == "keep_latest"
            os.unlink(tmp_path / "never.db")
            continue
        with pytest.raises(ConfigError, match=needle):
            connect(url + query, **options)
        with pytest.raises(ConfigError, match=needle):
            async with aconnect(url + query, **options):
                pass
        assert not (tmp_path / "never.db").exists()


async def test_bad_ttl_options_are_refused_before_anything_opens(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/never.db"
    for options, needle in (
        ({"ttl": 0}, "ttl must be a positive duration"),
        ({"ttl": "30d"}, "ttl must be a positive duration"),
        ({"ttl": datetime.timedelta(0)}, "ttl must be a positive duration"),
        ({"ttl": 60, "sweep_every": -1}, "sweep_every must be a positive duration"),
        ({"sweep_every": 60}, "sweep_every= goes with ttl="),
        ({"ttl": 60, "ttl_strategy": "latest"}, "unknown ttl_strategy 'latest'"),
        ({"ttl_strategy": "keep_latest"}, "ttl_strategy= goes with ttl="),
    ):
        with pytest.raises(ConfigError, match=needle):
            connect(url, **options)
        with pytest.raises(ConfigError, match=needle):
            async with aconnect(url, **options):
                pass
    assert not (tmp_path / "never.db").exists()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_says_its_sweeper_is_not_running(tmp_path: Path) -> None:
    with connect(f"sqlite:///{tmp_path}/forked.db", ttl=3600, sweep_every=3600) as saver:
        (sweeper,) = saver._sweepers
        assert not sweeper.stopped
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report, then leave without running the parent's cleanup
            os.write(write, b"stopped" if sweeper.stopped else b"running")
            os._exit(0)
        os.close(write)
        said = os.read(read, 16)
        os.close(read)
        os.waitpid(pid, 0)
        assert said == b"stopped"
        assert not sweeper.stopped  # the parent's goes on
