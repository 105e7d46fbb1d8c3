"""`checkpoint_base.agent_server.checkpointer` reads its storage from the environment."""

from __future__ import annotations

import importlib
import sys
import uuid
from pathlib import Path
from typing import Any, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph

from checkpoint_base import ConfigError, StorageError
from checkpoint_base.agent_server import checkpointer
from checkpoint_base.serde import DisallowedTypeError


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


async def test_ttl_sweeps_threads_idle_for_that_long(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHECKPOINTERS_URL", "memory://")
    monkeypatch.delenv("LANGGRAPH_AES_KEY", raising=False)
    for raw, seconds in (("30d", 30 * 86400.0), (" 1d12h ", 36 * 3600.0), ("90", 90.0)):
        monkeypatch.setenv("CHECKPOINTERS_TTL", raw)
        async with checkpointer() as saver:
            (sweeper,) = saver._sweepers
            assert sweeper.idle == seconds and not sweeper.stopped
        assert sweeper.stopped
    monkeypatch.setenv("CHECKPOINTERS_TTL", "")
    async with checkpointer() as saver:
        assert saver._sweepers == []
    for bad in ("soon", "0", "-5", "0d", "nan", "inf"):
        monkeypatch.setenv("CHECKPOINTERS_TTL", bad)
        with pytest.raises(ConfigError, match=f"CHECKPOINTERS_TTL={bad!r}: give how long"):
            async with checkpointer():
                pass
    monkeypatch.setenv("CHECKPOINTERS_TTL", "7d")
    monkeypatch.setenv("CHECKPOINTERS_TTL_STRATEGY", "keep_latest")
    async with checkpointer() as saver:
        (sweeper,) = saver._sweepers
        assert sweeper.strategy == "keep_latest" and sweeper.idle == 7 * 86400.0
    for bad_strategy, ttl in (("latest", "7d"), ("keep_latest", "")):
        monkeypatch.setenv("CHECKPOINTERS_TTL_STRATEGY", bad_strategy)
        monkeypatch.setenv("CHECKPOINTERS_TTL", ttl)
        needle = f"CHECKPOINTERS_TTL_STRATEGY={bad_strategy!r}: give delete"
        with pytest.raises(ConfigError, match=needle):
            async with checkpointer():
                pass


async def test_the_url_may_carry_the_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LANGGRAPH_AES_KEY", raising=False)
    monkeypatch.delenv("CHECKPOINTERS_TTL_STRATEGY", raising=False)
    monkeypatch.setenv("CHECKPOINTERS_URL", "memory://?ttl=90&ttl_strategy=keep_latest")
    monkeypatch.setenv("CHECKPOINTERS_TTL", "")
    async with checkpointer() as saver:
        (sweeper,) = saver._sweepers
        assert (sweeper.idle, sweeper.strategy) == (90.0, "keep_latest")
    monkeypatch.setenv("CHECKPOINTERS_TTL", "30d")
    with pytest.raises(ConfigError, match=r"ttl is given twice, in the URL \(ttl=90\)"):
        async with checkpointer():
            pass


TICKETS = """
from dataclasses import dataclass


@dataclass
class Ticket:
    id: int
"""


async def test_allow_names_classes_the_state_schema_does_not(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A class inside an `Any` field is not in the schema the server allows at compile
    time: without CHECKPOINTERS_ALLOW the thread's next turn cannot load its state."""
    name = f"tickets_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(TICKETS)
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    tickets = importlib.import_module(name)

    class State(TypedDict):
        items: list[Any]

    builder = StateGraph(State)
    builder.add_node("add", lambda s: {"items": [*s["items"], tickets.Ticket(len(s["items"]))]})
    builder.add_edge(START, "add")
    builder.add_edge("add", END)
    monkeypatch.setenv("CHECKPOINTERS_URL", "memory://")
    monkeypatch.delenv("LANGGRAPH_AES_KEY", raising=False)
    config = {"configurable": {"thread_id": "t"}}

    monkeypatch.delenv("CHECKPOINTERS_ALLOW", raising=False)
    async with checkpointer() as saver:
        graph = builder.compile(checkpointer=saver)
        await graph.ainvoke({"items": []}, config)
        with pytest.raises(DisallowedTypeError, match=f"{name}.Ticket"):
            await graph.ainvoke(None, config)

    for allow in (f"{name}:Ticket", f" json:JSONDecoder, {name} "):
        monkeypatch.setenv("CHECKPOINTERS_ALLOW", allow)
        async with checkpointer() as saver:
            graph = builder.compile(checkpointer=saver)
            await graph.ainvoke({"items": []}, config)
            state = await graph.ainvoke(None, config)  # loads the stored Ticket
            assert state["items"] == [tickets.Ticket(0)]
            assert type(state["items"][0]) is tickets.Ticket
        with pytest.raises(StorageError, match="closed"):  # closed on exit
            await saver.aget_tuple(config)

    for bad, needle in (
        ("no_such_module_here", "cannot import 'no_such_module_here'"),
        (f"{name}:Nope", "has no class 'Nope'"),
        (f"{name}:", "use MODULE:CLASS or MODULE"),
    ):
        monkeypatch.setenv("CHECKPOINTERS_ALLOW", bad)
        with pytest.raises(ConfigError, match=needle) as caught:
            async with checkpointer():
                pass
        assert f"CHECKPOINTERS_ALLOW {bad!r}" in str(caught.value)
