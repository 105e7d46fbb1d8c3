"""Every sub-command has --help with examples."""

from __future__ import annotations

import pytest

from .conftest import Cli

COMMANDS = ["setup", "threads", "history", "show", "diff", "prune", "compact", "migrate", "demo"]


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help_has_examples(cli: Cli, command: str) -> None:
    result = cli(command, "--help")
    assert result.status == 0
    assert f"usage: checkpointers {command}" in result.out
    assert "example" in result.out
    assert f"checkpointers {command} " in result.out.split("example", 1)[1]


def test_top_level_help_lists_every_command_and_url_form(cli: Cli) -> None:
    result = cli("--help")
    assert result.status == 0
    for command in [*COMMANDS, "bench"]:
        assert command in result.out
    for form in (
        "sqlite:///",
        "postgresql://",
        "langgraph-sqlite:///",
        "langgraph-postgres://",
        "py:",
    ):
        assert form in result.out


def test_usage_error_exits_2(cli: Cli) -> None:
    result = cli("prune", "sqlite:///x.db")  # needs --keep-last or --older-than
    assert result.status == 2
    assert "one of the arguments --keep-last --older-than is required" in result.err
