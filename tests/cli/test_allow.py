"""`--allow`: `show`, `diff`, `history` and `migrate` rebuild the application's own classes (a
dataclass, a pydantic model of the state) once told to, and name the option when they stop on
one; a command never imports a module because stored data names it."""

from __future__ import annotations

import importlib
import sys

import pytest
from langgraph.checkpoint.sqlite import SqliteSaver

from .conftest import App, Cli, assert_one_line_error


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


def test_diff_names_the_option_then_rebuilds_with_it(cli: Cli, app: App) -> None:
    assert_one_line_error(cli("diff", app.url, "t1"), f"--allow {app.module}:")
    shown = cli("diff", app.url, "t1", "--allow", app.module)
    assert shown.status == 0, shown.err
    assert "ticket: changed" in shown.out, shown.out
    assert "+ Ticket(id=2, title='next')" in shown.out, shown.out


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
