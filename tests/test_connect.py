"""connect() / aconnect(): schemes, entry points, clear errors."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

from checkpoint_base import (
    CheckpointSaver,
    ConfigError,
    MemorySaver,
    MissingDriverError,
    UnknownBackendError,
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
        ("sqlite:///{tmp}/ttl.db", "ttl", "saver.delete_idle_threads(timedelta(days=30))"),
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
