"""`checkpointers check`: every stored checkpoint read back; what cannot be, listed by part."""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path

import pytest
from langgraph.checkpoint.serde.encrypted import EncryptedSerializer

from checkpoint_base import connect
from checkpoint_base._demo import build_demo_graph
from checkpoint_base.serde import MsgpackSerializer

from .conftest import App, Cli, Filled, assert_one_line_error

KEY = "0123456789abcdef0123456789abcdef"


def test_a_healthy_store_reads_back_whole(cli: Cli, filled: Filled) -> None:
    result = cli("check", filled.url)
    assert result.status == 0, result.out + result.err
    line = result.out.strip()
    assert line.startswith(f"all readable: {len(filled.work.thread_ids)} threads, "), line
    assert "values" in line and "pending writes" in line


def test_a_damaged_value_is_named_and_the_rest_still_read(cli: Cli, filled: Filled) -> None:
    victim = filled.work.thread_ids[0]
    with sqlite3.connect(filled.path) as conn:
        channel, version = conn.execute(
            "SELECT channel, version FROM cp_blobs WHERE thread_id = ? AND type <> 'empty' "
            "ORDER BY length(data) DESC LIMIT 1",
            (victim,),
        ).fetchone()
        conn.execute(
            "UPDATE cp_blobs SET data = x'c1c1c1' WHERE thread_id = ? AND channel = ? "
            "AND version = ?",
            (victim, channel, version),
        )
    result = cli("check", filled.url)
    assert result.status == 1
    lines = result.out.strip().splitlines()
    rows = [line for line in lines[1:] if line.startswith(victim)]
    assert rows and all(f"value {channel!r}" in row for row in rows), result.out
    assert all("MalformedDataError" in row for row in rows), result.out
    assert lines[-1].startswith("unreadable: 1 part of ") and "in 1 thread " in lines[-1]
    assert "MalformedDataError" in lines[-1]
    assert not any(t in result.out for t in filled.work.thread_ids[1:])

    doc = json.loads(cli("check", filled.url, "--json").out)
    assert doc["threads"] == len(filled.work.thread_ids)
    [problem] = doc["problems"]
    assert problem["thread_id"] == victim and problem["class"] is None
    assert f"channel {channel!r} at version {version!r}" in problem["part"]
    assert problem["error"].startswith("MalformedDataError: ")

    others = filled.work.thread_ids[1:]
    named = cli("check", filled.url, *(a for t in others for a in ("--thread", t)))
    assert named.status == 0 and f"all readable: {len(others)} threads" in named.out


def test_classes_of_the_application_are_named_with_the_option(cli: Cli, app: App) -> None:
    result = cli("check", app.url)
    assert result.status == 1
    assert f"{app.module}.Ticket not allowed" in result.out
    assert f"{app.module}.Profile not allowed" in result.out
    assert f"run again with --allow {app.module}:Ticket --allow {app.module}:Profile" in (
        result.out
    )
    allowed = cli("check", app.url, "--allow", app.module)
    assert allowed.status == 0, allowed.out + allowed.err
    assert allowed.out.startswith("all readable: 1 thread, 3 checkpoints")


def test_encrypted_values_need_their_key(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path}/secret.db"
    serde = EncryptedSerializer.from_pycryptodome_aes(serde=MsgpackSerializer(), key=KEY.encode())
    with connect(url, serde=serde) as saver:
        build_demo_graph(saver).invoke(
            {"messages": [("user", "What is 6 * 7?")]}, {"configurable": {"thread_id": "s"}}
        )
    monkeypatch.delenv("LANGGRAPH_AES_KEY", raising=False)
    locked = cli("check", url)
    assert locked.status == 1 and "encrypted, and no key" in locked.out
    assert "set LANGGRAPH_AES_KEY to the key that wrote them" in locked.out
    monkeypatch.setenv("LANGGRAPH_AES_KEY", KEY)
    opened = cli("check", url)
    assert opened.status == 0 and opened.out.startswith("all readable: 1 thread, ")
    monkeypatch.setenv("LANGGRAPH_AES_KEY", "f" * 32)  # another key: decryption fails
    wrong = cli("check", url)
    assert wrong.status == 1 and "unreadable: " in wrong.out


@pytest.mark.parametrize("kind", ["postgres", "redis", "redis-cluster"])
def test_every_server(cli: Cli, kind: str) -> None:
    servers = pytest.importorskip("checkpoint_base.testing.servers")
    url = {
        "postgres": servers.postgres_url,
        "redis": servers.redis_url,
        "redis-cluster": servers.redis_cluster_url,
    }[kind]()
    thread = f"check-{uuid.uuid4().hex[:8]}"
    with connect(url) as saver:
        saver.setup()
        build_demo_graph(saver).invoke(
            {"messages": [("user", "What is 6 * 7?")]}, {"configurable": {"thread_id": thread}}
        )
    result = cli("check", url, "--thread", thread)
    assert result.status == 0, result.out + result.err
    assert result.out.startswith("all readable: 1 thread, ")


def test_a_missing_thread_is_one_line(cli: Cli, filled: Filled) -> None:
    assert_one_line_error(cli("check", filled.url, "--thread", "nope"), "no thread 'nope'")
