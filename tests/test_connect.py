"""connect() / aconnect(): schemes, entry points, clear errors."""

from __future__ import annotations

import asyncio
import datetime
import importlib.metadata
import os
import time
from pathlib import Path
from types import SimpleNamespace

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


def test_every_documented_scheme_is_registered() -> None:
    assert {
        "memory",
        "sqlite",
        "postgres",
        "postgresql",
        "redis",
        "rediss",
        "redis+cluster",
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


@pytest.mark.parametrize("url", ["nosuch://x", "mysql://localhost/db"])
def test_unknown_scheme_lists_installed(url: str) -> None:
    with pytest.raises(UnknownBackendError) as info:
        connect(url)
    message = str(info.value)
    assert url.split("://")[0] in message
    assert "memory" in message and "sqlite" in message


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


def test_memory_url_takes_no_options() -> None:
    for url in ("memory://", "memory:///"):
        connect(url).close()
    for url in ("memory://?ttl=5", "memory://name"):
        with pytest.raises(ConfigError, match="memory:// takes nothing after the scheme"):
            connect(url)


def _put_one(saver: CheckpointSaver, thread_id: str) -> None:
    from langgraph.checkpoint.base import empty_checkpoint

    cfg = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
    saver.put(cfg, empty_checkpoint(), {}, {})


@pytest.mark.parametrize("url", ["memory://", "sqlite:///{tmp}/swept.db"])
async def test_ttl_sweeps_idle_threads_while_the_saver_is_open(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = url.format(tmp=tmp_path)
    with connect(url, ttl=datetime.timedelta(hours=1), sweep_every=0.05) as saver:
        (sweeper,) = saver._sweepers
        assert (sweeper.idle, sweeper.every) == (3600.0, 0.05)
        with monkeypatch.context() as m:  # written two hours ago
            m.setattr(_convert, "time", SimpleNamespace(time=lambda: time.time() - 7200))
            _put_one(saver, "old")
        _put_one(saver, "new")
        deadline = time.monotonic() + 20
        while sweeper.deleted < 1:
            assert time.monotonic() < deadline, "the idle thread was not swept"
            await asyncio.sleep(0.01)
        assert [t.thread_id for t in saver.list_threads()] == ["new"]
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
