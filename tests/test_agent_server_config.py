"""`checkpoint_base.agent_server.checkpointer` reads its storage from the environment."""

from __future__ import annotations

import pytest

from checkpoint_base import ConfigError, StorageError
from checkpoint_base.agent_server import checkpointer


async def test_it_opens_the_url_with_keep_last(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHECKPOINTERS_URL", "memory://")
    monkeypatch.setenv("CHECKPOINTERS_KEEP_LAST", " 7 ")
    monkeypatch.delenv("LANGGRAPH_AES_KEY", raising=False)
    async with checkpointer() as saver:
        assert saver.keep_last == 7
        assert await saver.aget_tuple({"configurable": {"thread_id": "t"}}) is None
    with pytest.raises(StorageError, match="closed"):  # closed on exit
        await saver.aget_tuple({"configurable": {"thread_id": "t"}})


async def test_it_names_what_is_missing_or_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHECKPOINTERS_URL", raising=False)
    with pytest.raises(ConfigError, match=r"CHECKPOINTERS_URL is not set.*sqlite:///"):
        async with checkpointer():
            pass
    monkeypatch.setenv("CHECKPOINTERS_URL", "memory://")
    for bad in ("ten", "0"):
        monkeypatch.setenv("CHECKPOINTERS_KEEP_LAST", bad)
        with pytest.raises(ConfigError, match="keep"):
            async with checkpointer():
                pass
    monkeypatch.delenv("CHECKPOINTERS_KEEP_LAST")
    monkeypatch.setenv("LANGGRAPH_AES_KEY", "short")
    with pytest.raises(ConfigError, match=r"16, 24, or 32 bytes.*holds 5 bytes"):
        async with checkpointer():
            pass
