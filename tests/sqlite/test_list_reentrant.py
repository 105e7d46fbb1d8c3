"""`list()` holds no lock, cursor or transaction across `yield`: the loop body may use the saver."""

from __future__ import annotations

import sqlite3

from checkpoint_sqlite import SqliteSaver
from tests.conformance.builders import chain, checkpoint, config, new_thread
from tests.conformance.harness import Harness

COUNT = 230  # more than two pages of the saver's list walk


async def test_saver_calls_inside_a_list_loop(sh: Harness) -> None:
    tid, other = new_thread(), new_thread()
    configs = await chain(sh, tid, COUNT)
    seen = []
    if sh.is_async:
        async for tup in sh.saver.alist(config(tid)):
            seen.append(tup.metadata["step"])
            assert await sh.saver.aget_tuple(tup.config) is not None
            await sh.saver.aput_writes(tup.config, [("ch", len(seen))], "task")
            await sh.saver.aput(config(other), checkpoint({"n": len(seen)}), {}, {"n": 1})
    else:
        for tup in sh.saver.list(config(tid)):
            seen.append(tup.metadata["step"])
            assert sh.saver.get_tuple(tup.config) is not None
            sh.saver.put_writes(tup.config, [("ch", len(seen))], "task")
            sh.saver.put(config(other), checkpoint({"n": len(seen)}), {}, {"n": 1})
    assert seen == list(reversed(range(COUNT)))
    latest = await sh.get_tuple(configs[-1])
    assert latest is not None and latest.pending_writes == [("task", "ch", 1)]
    assert len(await sh.list(config(other))) == COUNT


async def test_deleting_inside_a_list_loop(sh: Harness) -> None:
    tid = new_thread()
    await chain(sh, tid, COUNT)
    seen = 0
    if sh.is_async:
        async for _ in sh.saver.alist(config(tid)):
            seen += 1
            if seen == 150:
                await sh.delete_thread(tid)
    else:
        for _ in sh.saver.list(config(tid)):
            seen += 1
            if seen == 150:
                sh.saver.delete_thread(tid)
    # The rest of the current page was already fetched; later pages see the deletion.
    assert 150 <= seen < COUNT
    assert await sh.list(config(tid)) == []


def test_given_connection_inside_a_list_loop(db_path: str) -> None:
    conn = sqlite3.connect(db_path, check_same_thread=False)
    try:
        saver = SqliteSaver(conn)
        parent = None
        for step in range(COUNT):
            stored = saver.put(
                config("t", checkpoint_id=parent), checkpoint({"s": step}), {"step": step}, {"s": 1}
            )
            parent = stored["configurable"]["checkpoint_id"]
        seen = 0
        for tup in saver.list(config("t")):
            seen += 1
            saver.put_writes(tup.config, [("ch", seen)], "task")
        assert seen == COUNT
    finally:
        conn.close()
