"""Helpers for the command-line tests: run `main([...])`, capture its output."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

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
