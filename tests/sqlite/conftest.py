"""Fixtures of the SQLite-only tests: a database file per test, workers in other processes."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from checkpoint_sqlite._testing import targets
from tests.conformance.harness import Harness
from tests.sqlite import _conns

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "checkpoints.db")


@pytest.fixture(autouse=True)
def _close_test_connections() -> Iterator[None]:
    """Close the connections the test opened through `_conns.connect`."""
    yield
    _conns.close_all()


def applied_migrations(db_path: str) -> list[int]:
    """The schema versions recorded in a database file, in order."""
    with contextlib.closing(sqlite3.connect(db_path)) as raw:
        return [v for (v,) in raw.execute("SELECT v FROM cp_migrations ORDER BY v")]


def worker(*args: str, stdout: int | None = subprocess.PIPE) -> subprocess.Popen[str]:
    """Start `python -m tests.sqlite._worker ARGS` from the repository root."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-m", "tests.sqlite._worker", *args],
        cwd=ROOT,
        env=env,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(
    params=[
        pytest.param(("sqlite", "sync"), id="file-sync"),
        pytest.param(("sqlite", "async"), id="file-async"),
        pytest.param(("sqlite-memory", "sync"), id="memory-sync"),
        pytest.param(("sqlite-memory", "async"), id="memory-async"),
    ]
)
async def sh(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    """A saver of each SQLite target in each flavor, behind the conformance harness."""
    name, flavor = request.param
    target = next(t for t in targets() if t.name == name)
    if flavor == "sync":
        assert target.open_sync is not None
        with target.open_sync() as saver:
            yield Harness(target, flavor, saver)
    else:
        assert target.open_async is not None
        async with target.open_async() as saver:
            yield Harness(target, flavor, saver)
