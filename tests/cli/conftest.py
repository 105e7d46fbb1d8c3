"""Helpers for the command-line tests: run `main([...])`, capture its output."""

from __future__ import annotations

import importlib
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

from checkpoint_base import connect
from checkpoint_base._cli import main
from tests.migration.workload import Workload, fill


@dataclass(frozen=True)
class Result:
    status: int
    out: str
    err: str


Cli = Callable[..., Result]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    """`cli("threads", url)` runs the command line in this process and captures its output."""

    def run(*argv: str) -> Result:
        capsys.readouterr()
        status = main(list(argv))
        captured = capsys.readouterr()
        return Result(status, captured.out, captured.err)

    return run


@dataclass(frozen=True)
class Filled:
    url: str
    path: Path
    work: Workload


@pytest.fixture
def filled(tmp_path: Path) -> Filled:
    """A SQLite database of this package holding the migration workload's four threads."""
    path = tmp_path / "source.db"
    url = f"sqlite:///{path}"
    with connect(url) as saver:
        work = fill(saver, prefix="cli")
    return Filled(url, path, work)


def assert_one_line_error(result: Result, *needles: str) -> None:
    """A failed command: non-zero status, one line on stderr, no traceback."""
    assert result.status != 0
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert "Traceback" not in result.err
    for needle in needles:
        assert needle in lines[0], lines[0]


APP_MODULE = """
from dataclasses import dataclass
from typing import TypedDict

from pydantic import BaseModel


@dataclass
class Ticket:
    id: int
    title: str


class Profile(BaseModel):
    name: str


class State(TypedDict, total=False):
    ticket: Ticket
    profile: Profile
"""


@dataclass(frozen=True)
class App:
    url: str
    module: str
    path: Path


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[App]:
    """A thread written by a graph whose state holds classes of the application's module,
    stopped before a node that a `Send` of one of them starts; the module is then forgotten,
    as it is in a fresh `checkpointers` process run from the application's directory."""
    name = f"app_state_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(APP_MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])  # restored afterwards
    mod = importlib.import_module(name)

    def plan(state: mod.State) -> dict:  # type: ignore[name-defined]
        return {"ticket": mod.Ticket(state["ticket"].id + 1, "next")}

    def work(ticket: mod.Ticket) -> dict:  # type: ignore[name-defined]
        return {"profile": mod.Profile(name=ticket.title)}

    builder = StateGraph(mod.State)
    builder.add_node("plan", plan)
    builder.add_node("work", work)
    builder.add_edge(START, "plan")
    builder.add_conditional_edges("plan", lambda s: [Send("work", s["ticket"])])
    builder.add_edge("work", END)
    url = f"sqlite:///{tmp_path / 'app.db'}"
    with connect(url) as saver:
        graph = builder.compile(checkpointer=saver, interrupt_before=["work"])
        start = {"ticket": mod.Ticket(1, "first"), "profile": mod.Profile(name="ann")}
        graph.invoke(start, {"configurable": {"thread_id": "t1"}})
    del sys.modules[name]
    yield App(url, name, tmp_path)
    sys.modules.pop(name, None)
