"""Operations on long threads do work linear in what they touch: one script on a thread of
thousands of checkpoints must not hold the server (other clients get BUSY after 5 s).

The work a script does is counted by the server itself (`INFO commandstats` counts the
commands a script calls), which is exact where a time would depend on the machine."""

from __future__ import annotations

import tracemalloc
from typing import Any

import pytest

from tests.conformance.builders import checkpoint, cid, config

STEPS = 300
COPY_STEPS = 500


def _calls(raw: Any, command: str) -> int:
    stats = raw.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


def _runs_thread(saver: Any, thread_id: str, n: int) -> list[Any]:
    """A thread of `n` checkpoints, each of a run of its own (one graph invoke per step)."""
    configs, parent = [], None
    for step in range(n):
        stored = saver.put(
            config(thread_id, checkpoint_id=parent),
            checkpoint({"step": step}, {"step": step + 1}),
            {"source": "loop", "step": step, "run_id": f"run-{step}"},
            {"step": step + 1},
        )
        configs.append(stored)
        parent = cid(stored)
    return configs


@pytest.mark.parametrize("kind", ["single", "valkey"])  # commandstats of one server
def test_delete_for_many_runs_reads_the_thread_once(open_saver: Any, raw: Any) -> None:
    saver = open_saver()
    configs = _runs_thread(saver, "long", STEPS)
    gone = range(0, STEPS, 2)
    before = _calls(raw, "hget")
    saver.delete_for_runs([f"run-{s}" for s in gone])
    hgets = _calls(raw, "hget") - before
    # Each deleted checkpoint is read once, the thread's rest once when its blobs are
    # collected: about STEPS. Settling the thread after each run read it STEPS / 2 times
    # (33,825 HGETs here; with 10,000 steps and 5,000 runs the script ran for minutes).
    assert hgets <= 2 * STEPS, hgets
    listed = list(saver.list(config("long")))
    assert [t.config for t in listed] == [configs[s] for s in range(STEPS - 1, 0, -2)]
    assert [t.checkpoint["channel_values"]["step"] for t in listed[:3]] == [299, 297, 295]


def test_copy_of_a_long_thread_holds_one_batch(open_saver: Any) -> None:
    saver = open_saver()
    configs, parent = [], None
    for step in range(COPY_STEPS):
        stored = saver.put(
            config("src", checkpoint_id=parent),
            checkpoint(
                {"step": step, "text": str(step) * 2000}, {"step": step + 1, "text": step + 1}
            ),
            {"source": "loop", "step": step},
            {"step": step + 1, "text": step + 1},
        )
        configs.append(stored)
        parent = cid(stored)
    tracemalloc.start()
    try:
        saver.copy_thread("src", "dst")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # One batch of rows (64) at a time. Reading the whole thread first held every blob:
    # 7.5 MB here, 39 MB for 10,000 steps of small blobs.
    assert peak < 2_000_000, peak
    copied = list(saver.list(config("dst")))
    assert [cid(t.config) for t in copied] == [cid(c) for c in reversed(configs)]
    assert [cid(t.parent_config) for t in copied[:-1]] == [cid(c) for c in reversed(configs[:-1])]
    assert copied[0].checkpoint["channel_values"]["text"] == str(COPY_STEPS - 1) * 2000


def _footprint(raw: Any, saver: Any, thread_id: str) -> dict[str, int]:
    """Entries of each key of the thread, and the thread's entries in its bucket's run index."""
    tk = saver.backend.layout.thread(thread_id)
    sizes = {}
    for key in tk.keys[:8]:
        kind = raw.type(key).decode()
        sizes[key[len(tk.base) :].decode()] = (
            raw.hlen(key) if kind == "hash" else raw.zcard(key) if kind == "zset" else 0
        )
    runs = raw.zrangebylex(tk.keys[9], b"[R" + tk.tid, b"(R" + tk.tid + b"\xff")
    sizes["runs"] = len(runs)
    return sizes


@pytest.mark.parametrize("kind", ["single", "valkey"])  # commandstats of one server
def test_a_long_prune_runs_as_short_scripts_and_leaves_what_one_would(
    open_saver: Any, raw: Any
) -> None:
    """Each script drops at most `prune_batch` checkpoints; the last one collects the blobs
    and runs of all of them, so the thread ends as a prune in one script leaves it."""
    saver = open_saver()
    for tid in ("whole", "batched"):
        configs = _runs_thread(saver, tid, 60)
        for stored in configs[::3]:
            saver.put_writes(stored, [("step", -1)], "task")
        inner = saver.put(config(tid, "inner"), checkpoint({"x": 1}), {"run_id": "run-0"}, {"x": 1})
        saver.put(
            config(tid, "inner", cid(inner)), checkpoint({"x": 2}), {"run_id": "run-x"}, {"x": 2}
        )
    calls = []
    for tid, batch in (("whole", 10_000), ("batched", 7)):
        saver.backend.prune_batch = batch
        before = _calls(raw, "evalsha")
        saver.prune([tid])
        calls.append(_calls(raw, "evalsha") - before)
    # 59 + 1 checkpoints go: 8 scripts of 7 then one of 4 that settles, against one script.
    assert calls[1] - calls[0] == 8, calls
    assert _footprint(raw, saver, "batched") == _footprint(raw, saver, "whole")
    for tid in ("whole", "batched"):
        (latest,) = [
            t for t in saver.list(config(tid)) if t.config["configurable"]["checkpoint_ns"] == ""
        ]
        assert latest.checkpoint["channel_values"] == {"step": 59}
        assert _footprint(raw, saver, tid)["runs"] == 2  # of the two kept: run-59, run-x
