"""connect() / aconnect(): schemes, entry points, clear errors."""

from __future__ import annotations

import importlib.metadata

import pytest

from checkpoint_base import (
    CheckpointSaver,
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
