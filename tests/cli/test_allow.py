"""`--allow`: `show`, `history` and `migrate` rebuild the application's own classes (a
dataclass, a pydantic model of the state) once told to, and name the option when they stop on
one; a command never imports a module because stored data names it."""

from __future__ import annotations

import importlib
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

from checkpoint_base import connect

from .conftest import Cli, assert_one_line_error

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


def test_show_names_the_option_then_rebuilds_with_it(cli: Cli, app: App) -> None:
    stopped = cli("show", app.url, "t1")
    assert_one_line_error(
        stopped, f"{app.module}.", "a class of the application's own", f"--allow {app.module}:"
    )
    assert app.module not in sys.modules  # refusing imported nothing

    for allow in ([app.module], [f"{app.module}:Ticket", f"{app.module}:Profile"]):
        shown = cli("show", app.url, "t1", *(a for spec in allow for a in ("--allow", spec)))
        assert shown.status == 0, shown.err
        assert "ticket: Ticket(id=2, title='next')" in shown.out
        assert "profile: Profile(name='ann')" in shown.out


def test_history_of_a_send_carrying_an_own_class(cli: Cli, app: App) -> None:
    assert_one_line_error(cli("history", app.url, "t1"), f"--allow {app.module}:Ticket")
    listed = cli("history", app.url, "t1", "--allow", app.module)
    assert listed.status == 0, listed.err
    newest = listed.out.splitlines()[2].split()
    assert newest[:2] == ["1", "loop"] and "work" in newest, listed.out


def test_migrate_to_official_storage_rebuilds_them_there(cli: Cli, app: App) -> None:
    target = app.path / "official.db"
    url = f"langgraph-sqlite:///{target}"
    assert_one_line_error(cli("migrate", app.url, url), f"--allow {app.module}:")
    done = cli("migrate", app.url, url, "--verify", "--allow", app.module)
    assert done.status == 0, done.err
    assert "3 checkpoints identical" in done.out
    mod = importlib.import_module(app.module)
    with SqliteSaver.from_conn_string(str(target)) as official:
        got = official.get_tuple({"configurable": {"thread_id": "t1"}})
    assert got is not None
    assert got.checkpoint["channel_values"]["ticket"] == mod.Ticket(2, "next")
    assert got.checkpoint["channel_values"]["profile"] == mod.Profile(name="ann")


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("no_such_module_here", "cannot import 'no_such_module_here'"),
        ("{module}:Nope", "has no class 'Nope'"),
        ("json", "json defines no dataclass, pydantic model, enum or named tuple"),
        ("{module}:", "use MODULE:CLASS or MODULE"),
        (":Ticket", "use MODULE:CLASS or MODULE"),
    ],
)
def test_a_bad_allow_is_one_line_naming_it(cli: Cli, app: App, spec: str, needle: str) -> None:
    spec = spec.format(module=app.module)
    assert_one_line_error(cli("show", app.url, "t1", "--allow", spec), needle)
