"""A prune decides what to keep, then deletes: a checkpoint stored in between is not its to
delete. The writer here is another caller of the same saver (another connection of a pool,
another lane), who stores a newer checkpoint right after the prune has read the thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from checkpoint_base import CheckpointSaver

from .builders import chain, checkpoint, cid, config, new_thread
from .harness import Harness


def _after_heads(saver: CheckpointSaver, act: Callable[[], None]) -> Callable[[], None]:
    """Make the saver's backend run `act` once, right after its next `heads` read."""
    backend = saver.backend
    original = backend.heads

    def heads(thread_id: str) -> Any:
        found = yield from original(thread_id)
        backend.heads = original  # type: ignore[method-assign]
        act()
        return found

    backend.heads = heads  # type: ignore[method-assign]

    def undo() -> None:
        backend.heads = original  # type: ignore[method-assign]

    return undo


async def test_prune_keeps_a_checkpoint_stored_after_it_read_the_thread(h: Harness) -> None:
    tid = new_thread()
    stored = await chain(h, tid, 3)
    newer: dict[str, Any] = {}
    errors: list[BaseException] = []

    def write(loop: asyncio.AbstractEventLoop | None) -> None:
        try:
            cp = checkpoint({"a": "newest"}, {"a": 99})
            parent = config(tid, "", cid(stored[-1]))
            if loop is None:
                newer["config"] = h.saver.put(parent, cp, {"step": 9}, {"a": 99})
            else:
                coro = h.saver.aput(parent, cp, {"step": 9}, {"a": 99})
                newer["config"] = asyncio.run_coroutine_threadsafe(coro, loop).result(10)
        except BaseException as exc:  # reported below
            errors.append(exc)

    writer: list[threading.Thread] = []
    # An async saver may run the prune's plan on a thread of its own: take the loop here.
    loop = None if h.flavor == "sync" else asyncio.get_running_loop()

    def start_writer() -> None:
        thread = threading.Thread(target=write, args=(loop,), daemon=True)
        writer.append(thread)
        thread.start()
        # Give the writer time to store its checkpoint, unless the prune holds a lock it
        # needs (then it stores it after the prune, which is as good).
        thread.join(0.5)

    undo = _after_heads(h.saver, start_writer)
    try:
        await h.prune([tid])
    finally:
        undo()
    for thread in writer:
        await asyncio.to_thread(thread.join, 15)
    assert writer and not errors, errors
    got = await h.get_tuple(newer["config"])
    assert got is not None, "the prune deleted a checkpoint stored after it read the thread"
    assert got.checkpoint["channel_values"] == {"a": "newest"}
    latest = await h.get_tuple(config(tid))
    assert latest is not None and latest.config == newer["config"]
