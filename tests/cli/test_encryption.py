"""The command line on checkpoints encrypted with LangGraph's `EncryptedSerializer` (AES).

With `LANGGRAPH_AES_KEY` set, as LangGraph's server reads it, the commands read encrypted
checkpoints and a migration that must decode values (to or from LangGraph's official SQLite
saver, which stores a checkpoint's values inside it) encrypts what it writes again. Without
the key, or with another one, they fail in one line that says the data is encrypted.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.serde.encrypted import EncryptedSerializer
from langgraph.graph import END, START, MessagesState, StateGraph

from checkpoint_base.serde import MsgpackSerializer
from checkpoint_sqlite import SqliteSaver

from .conftest import Cli, assert_one_line_error

KEY = "0123456789abcdef0123456789abcdef"
SECRET = "plaintext-4c2a-must-stay-encrypted"
THREAD = "secret-thread"


def _agent(state: MessagesState) -> dict[str, Any]:
    n = len(state["messages"])
    return {"messages": [AIMessage(content=f"{SECRET} {n}", id=f"ai-{n}")]}


def _graph(saver: Any) -> Any:
    builder = StateGraph(MessagesState)
    builder.add_node("agent", _agent)
    builder.add_edge(START, "agent")
    builder.add_edge("agent", END)
    return builder.compile(checkpointer=saver)


def _ours(key: str = KEY) -> EncryptedSerializer:
    return EncryptedSerializer.from_pycryptodome_aes(serde=MsgpackSerializer(), key=key.encode())


def _messages(saver: Any) -> list[Any]:
    state = _graph(saver).get_state({"configurable": {"thread_id": THREAD}})
    return list(state.values["messages"])


@pytest.fixture
def encrypted(tmp_path: Path) -> str:
    """A database of this package with one thread, every value encrypted."""
    path = tmp_path / "encrypted.db"
    with SqliteSaver.from_conn_string(str(path), serde=_ours()) as saver:
        graph = _graph(saver)
        for turn in range(2):
            message = HumanMessage(content=f"{SECRET} question {turn}", id=f"human-{turn}")
            graph.invoke({"messages": [message]}, {"configurable": {"thread_id": THREAD}})
    return f"sqlite:///{path}"


def test_show_and_history_read_encrypted_data_with_the_key(
    cli: Cli, encrypted: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LANGGRAPH_AES_KEY", raising=False)
    for command in ("show", "history"):
        result = cli(command, encrypted, THREAD)
        assert_one_line_error(result, "is encrypted", "holds no key", "LANGGRAPH_AES_KEY")

    monkeypatch.setenv("LANGGRAPH_AES_KEY", KEY)
    shown = cli("show", encrypted, THREAD, "--json")
    assert shown.status == 0, shown.err
    assert f"{SECRET} question 1" in json.dumps(json.loads(shown.out))
    history = cli("history", encrypted, THREAD, "--json")
    assert history.status == 0, history.err
    assert len(json.loads(history.out)) == 6

    monkeypatch.setenv("LANGGRAPH_AES_KEY", "fedcba9876543210fedcba9876543210")
    assert_one_line_error(cli("show", encrypted, THREAD), "is encrypted", "a key other than")
    monkeypatch.setenv("LANGGRAPH_AES_KEY", "short")
    assert_one_line_error(cli("show", encrypted, THREAD), "16, 24, or 32 bytes", "holds 5 bytes")


def test_migration_through_the_official_format_stays_encrypted(
    cli: Cli, encrypted: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    official = tmp_path / "official.db"
    monkeypatch.delenv("LANGGRAPH_AES_KEY", raising=False)
    # The official SQLite saver keeps a checkpoint's values inside it: they must be decoded.
    refused = cli("migrate", encrypted, f"langgraph-sqlite:///{official}")
    assert_one_line_error(refused, "is encrypted", "LANGGRAPH_AES_KEY")

    monkeypatch.setenv("LANGGRAPH_AES_KEY", KEY)
    there = cli("migrate", encrypted, f"langgraph-sqlite:///{official}", "--verify")
    assert there.status == 0, there.err
    with sqlite3.connect(official) as db:
        stored = db.execute("SELECT type, checkpoint FROM checkpoints").fetchall()
        stored += db.execute("SELECT type, value FROM writes").fetchall()
    assert stored and all(t.endswith("+aes") and SECRET.encode() not in v for t, v in stored)
    from langgraph.checkpoint.sqlite import SqliteSaver as OfficialSaver

    conn = sqlite3.connect(official, check_same_thread=False)
    try:
        key = KEY.encode()
        off = OfficialSaver(conn, serde=EncryptedSerializer.from_pycryptodome_aes(key=key))
        assert [m.content for m in _messages(off)][-1] == f"{SECRET} 3"
    finally:
        conn.close()

    back = tmp_path / "back.db"
    monkeypatch.delenv("LANGGRAPH_AES_KEY")
    refused = cli("migrate", f"langgraph-sqlite:///{official}", f"sqlite:///{back}")
    assert_one_line_error(refused, "is encrypted", "holds no key")
    monkeypatch.setenv("LANGGRAPH_AES_KEY", KEY)
    result = cli("migrate", f"langgraph-sqlite:///{official}", f"sqlite:///{back}", "--verify")
    assert result.status == 0, result.err
    with SqliteSaver.from_conn_string(str(back), serde=_ours()) as saver:
        messages = _messages(saver)
    assert [m.content for m in messages] == [
        f"{SECRET} question 0",
        f"{SECRET} 1",
        f"{SECRET} question 1",
        f"{SECRET} 3",
    ]
    with sqlite3.connect(back) as db:
        types = {t for (t,) in db.execute("SELECT type FROM cp_blobs")}
    assert types and all(t.endswith("+aes") for t in types if t != "empty"), types


def test_migration_through_official_postgres_keeps_values_encrypted(
    cli: Cli, encrypted: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg

    from checkpoint_base.testing import servers
    from checkpoint_postgres._testing import drop_schema, fresh_schema

    url = servers.postgres_url()
    schema = fresh_schema("encrypted")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("CREATE SCHEMA {}").format(psycopg.sql.Identifier(schema)))
    official = f"langgraph-postgres{url[len('postgresql') :]}?options=-csearch_path%3D{schema}"
    try:
        monkeypatch.setenv("LANGGRAPH_AES_KEY", KEY)
        there = cli("migrate", encrypted, official, "--verify")
        assert there.status == 0, there.err
        assert "identical" in there.out
        with psycopg.connect(url, autocommit=True) as conn:
            query = psycopg.sql.SQL("SELECT type, blob FROM {}.checkpoint_blobs").format(
                psycopg.sql.Identifier(schema)
            )
            blobs = conn.execute(query).fetchall()
        assert blobs and all(t.endswith("+aes") for t, _ in blobs)
        assert all(SECRET.encode() not in bytes(b) for _, b in blobs if b is not None)

        # Without the key its values are copied as stored, and still read with it.
        back = tmp_path / "back.db"
        monkeypatch.delenv("LANGGRAPH_AES_KEY")
        result = cli("migrate", official, f"sqlite:///{back}", "--verify")
        assert result.status == 0, result.err
        with SqliteSaver.from_conn_string(str(back), serde=_ours()) as saver:
            assert [m.content for m in _messages(saver)][-1] == f"{SECRET} 3"
    finally:
        drop_schema(url, schema)
