"""Our savers as the custom checkpointer of LangGraph's Agent Server (`langgraph dev`).

A real server: `langgraph dev` (langgraph-cli with the in-memory runtime) started on an app
whose `langgraph.json` names `checkpoint_base.agent_server.checkpointer`, driven over HTTP
with `langgraph_sdk`, once per backend (a SQLite file, PostgreSQL, Redis). The server runs
graphs under blockbuster, so a blocking call of the saver on its event loop fails the run.
What the server stored is read back through a saver of ours.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from checkpoint_base import connect
from checkpoint_base.testing import servers

if sys.version_info < (3, 11):
    pytest.skip("LangGraph's Agent Server needs Python 3.11+", allow_module_level=True)
# The dev extra installs them on Python 3.11+: missing, the tests fail rather than skip.
import langgraph_api  # noqa: F401
from langgraph_sdk import get_sync_client

GRAPH = """
from typing import Annotated, TypedDict

from langchain_core.messages import AIMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages


class State(TypedDict):
    messages: Annotated[list, add_messages]


def agent(state: State) -> dict:
    return {"messages": [AIMessage(content=f"reply {len(state['messages'])}")]}


builder = StateGraph(State)
builder.add_node("agent", agent)
builder.add_edge(START, "agent")
builder.add_edge("agent", END)
graph = builder.compile()
"""

APPROVAL_GRAPH = """
import asyncio
from typing import Annotated, TypedDict

from langchain_core.messages import AIMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import interrupt


class State(TypedDict):
    messages: Annotated[list, add_messages]


async def work(state: State) -> dict:
    if state["messages"][-1].content == "slow":
        await asyncio.sleep(3)
    return {"messages": [AIMessage(content=f"worked on {state['messages'][-1].content}")]}


def approve(state: State) -> dict:
    answer = interrupt("approve?")
    return {"messages": [AIMessage(content=f"approved: {answer}")]}


builder = StateGraph(State).add_sequence([work, approve])
graph = builder.add_edge(START, "work").add_edge("approve", END).compile()
"""

CONFIG = """
{
  "dependencies": ["."],
  "graphs": {"agent": "./graph.py:graph"},
  "checkpointer": {"path": "checkpoint_base.agent_server.checkpointer"}
}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _storage(backend: str, tmp_path: Path) -> Iterator[str]:
    """The URL of fresh storage for the server (a file, a schema, a key prefix)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'checkpoints.db'}"
    elif backend == "postgres":
        from checkpoint_postgres._testing import drop_schema

        schema = f"agent_{uuid.uuid4().hex[:12]}"
        try:
            yield f"{servers.postgres_url()}?schema={schema}"
        finally:
            drop_schema(servers.postgres_url(), schema)
    else:
        yield f"{servers.redis_url()}?key_prefix=agent-{uuid.uuid4().hex[:12]}"


def _app(tmp_path: Path, graph: str) -> Path:
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / "graph.py").write_text(textwrap.dedent(graph))
    (folder / "langgraph.json").write_text(CONFIG)
    return folder


@pytest.fixture
def app(tmp_path: Path) -> Path:
    return _app(tmp_path, GRAPH)


@contextlib.contextmanager
def _serve(app: Path, url: str, port: int, log: Path, **env: str) -> Iterator[str]:
    cli = Path(sys.executable).parent / "langgraph"
    env = {
        **os.environ,
        "CHECKPOINTERS_URL": url,
        "CHECKPOINTERS_KEEP_LAST": "10",
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",
        "LANGSMITH_TRACING": "false",
        **env,
    }
    argv = [str(cli), "dev", "--no-browser", "--no-reload", "--host", "127.0.0.1"]
    with log.open("w") as out:
        server = subprocess.Popen(
            [*argv, "--port", str(port)],
            cwd=app,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped whole, by its PID
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/ok", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"langgraph dev did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres", "redis"])
def test_the_agent_server_keeps_its_threads_in_our_saver(
    app: Path, tmp_path: Path, backend: str
) -> None:
    log = tmp_path / "server.log"
    with _storage(backend, tmp_path) as url, _serve(app, url, _free_port(), log) as base:
        client = get_sync_client(url=base)
        thread = client.threads.create()["thread_id"]
        for turn in range(3):
            message = {"role": "user", "content": f"turn {turn}"}
            client.runs.wait(thread, "agent", input={"messages": [message]})
        state: Any = client.threads.get_state(thread)
        contents = [m["content"] for m in state["values"]["messages"]]
        assert contents == ["turn 0", "reply 1", "turn 1", "reply 3", "turn 2", "reply 5"]
        history = client.threads.get_history(thread, limit=100)
        assert len(history) == 9  # input, start and agent steps of three runs

        copy = client.threads.copy(thread)["thread_id"]
        copied: Any = client.threads.get_state(copy)
        assert [m["content"] for m in copied["values"]["messages"]] == contents

        with connect(url) as saver:  # what the server stored, read by a saver of ours
            stored = list(saver.list({"configurable": {"thread_id": thread}}))
            assert len(stored) == 9
            assert {t.metadata.get("graph_id") for t in stored} == {"agent"}
            client.threads.delete(copy)
            assert saver.get_tuple({"configurable": {"thread_id": copy}}) is None
            assert saver.get_tuple({"configurable": {"thread_id": thread}}) is not None


@pytest.mark.slow
def test_the_agent_server_encrypts_with_langgraph_aes_key(app: Path, tmp_path: Path) -> None:
    from langgraph.checkpoint.serde.encrypted import EncryptedSerializer

    from checkpoint_base import DamagedDataError
    from checkpoint_base.serde import MsgpackSerializer

    key = "0123456789abcdef0123456789abcdef"
    log = tmp_path / "server.log"
    url = f"sqlite:///{tmp_path / 'checkpoints.db'}"
    with _serve(app, url, _free_port(), log, LANGGRAPH_AES_KEY=key) as base:
        client = get_sync_client(url=base)
        thread = client.threads.create()["thread_id"]
        message = {"role": "user", "content": "a secret"}
        client.runs.wait(thread, "agent", input={"messages": [message]})
        state: Any = client.threads.get_state(thread)
        assert [m["content"] for m in state["values"]["messages"]] == ["a secret", "reply 1"]
    config: Any = {"configurable": {"thread_id": thread}}
    with connect(url) as saver, pytest.raises(DamagedDataError) as no_key:
        saver.get_tuple(config)
    assert no_key.value.encryption == "no key"
    serde = EncryptedSerializer.from_pycryptodome_aes(serde=MsgpackSerializer(), key=key.encode())
    with connect(url, serde=serde) as saver:
        stored = saver.get_tuple(config)
    assert stored is not None
    messages = stored.checkpoint["channel_values"]["messages"]
    assert [m.content for m in messages] == ["a secret", "reply 1"]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres", "redis"])
def test_interrupts_and_rollbacks_through_the_agent_server(tmp_path: Path, backend: str) -> None:
    app = _app(tmp_path, APPROVAL_GRAPH)
    log = tmp_path / "server.log"

    def said(state: Any) -> list[str]:
        return [m["content"] for m in state["values"]["messages"]]

    with _storage(backend, tmp_path) as url, _serve(app, url, _free_port(), log) as base:
        client = get_sync_client(url=base)
        thread = client.threads.create()["thread_id"]
        client.runs.wait(thread, "agent", input={"messages": [{"role": "user", "content": "a"}]})
        waiting: Any = client.threads.get_state(thread)
        assert waiting["next"] == ["approve"]
        asked = [i["value"] for task in waiting["tasks"] for i in task["interrupts"]]
        assert asked == ["approve?"]
        client.runs.wait(thread, "agent", command={"resume": "yes"})
        done: Any = client.threads.get_state(thread)
        assert said(done) == ["a", "worked on a", "approved: yes"] and done["next"] == []

        # A run cancelled by the next one with multitask_strategy="rollback" leaves nothing:
        # the server deletes its checkpoints (adelete_for_runs).
        other = client.threads.create()["thread_id"]
        slow = client.runs.create(
            other, "agent", input={"messages": [{"role": "user", "content": "slow"}]}
        )
        time.sleep(1)
        message = {"role": "user", "content": "b"}
        kept = client.runs.create(
            other, "agent", input={"messages": [message]}, multitask_strategy="rollback"
        )
        client.runs.join(other, kept["run_id"])
        state: Any = client.threads.get_state(other)
        assert said(state) == ["b", "worked on b"] and state["next"] == ["approve"]
        with connect(url) as saver:
            stored = list(saver.list({"configurable": {"thread_id": other}}))
        assert stored and {t.metadata.get("run_id") for t in stored} == {kept["run_id"]}
        assert slow["run_id"] != kept["run_id"]
