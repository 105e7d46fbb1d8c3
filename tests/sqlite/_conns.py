"""sqlite3 connections that a test opens itself, closed when the test ends (`conftest.py`).

Python 3.13 warns (`ResourceWarning`) about a connection the garbage collector closes; a test
that opens one for a saver to use (the saver never closes a connection passed in), or to
hold a lock, or to look at the file, opens it here.
"""

from __future__ import annotations

import contextlib
import sqlite3
from typing import Any

__all__ = ["close_all", "connect"]

_opened: list[sqlite3.Connection] = []


def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
    """`sqlite3.connect`, closed at the end of the test."""
    conn = sqlite3.connect(*args, **kwargs)
    _opened.append(conn)
    return conn


def close_all() -> None:
    """Close what `connect` opened (closing twice is harmless)."""
    while _opened:
        conn = _opened.pop()
        with contextlib.suppress(sqlite3.ProgrammingError):  # opened for another thread only
            conn.close()
