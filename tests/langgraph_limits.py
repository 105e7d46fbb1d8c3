"""What LangGraph itself cannot do on some Python versions, for tests to skip by name.

LangGraph's `interrupt()` reads the running node's config from a context variable. In an
async run that variable reaches the node's task only on Python 3.11 and later (asyncio takes a
`context=` for new tasks from 3.11 on); on 3.10 `interrupt()` raises "Called get_config outside
of a runnable context" whatever the checkpointer, LangGraph's own `InMemorySaver` included. So
on 3.10 a test that runs a graph calling `interrupt()` through `ainvoke` is skipped; its sync
flavor still runs.
"""

from __future__ import annotations

import sys

import pytest

__all__ = ["ASYNC_INTERRUPTS", "needs_async_interrupts", "skip_async_interrupts"]

ASYNC_INTERRUPTS = sys.version_info >= (3, 11)
_REASON = (
    "LangGraph's interrupt() needs Python >= 3.11 in an async run (its config reaches the "
    "node's task through a context variable); on 3.10 it fails with every checkpointer"
)

needs_async_interrupts = pytest.mark.skipif(not ASYNC_INTERRUPTS, reason=_REASON)
"""Mark a test that runs a graph calling `interrupt()` through `ainvoke` in every case."""


def skip_async_interrupts(is_async: bool) -> None:
    """Skip the async flavor of a test whose graph calls `interrupt()`, on Python 3.10."""
    if is_async and not ASYNC_INTERRUPTS:
        pytest.skip(_REASON)
