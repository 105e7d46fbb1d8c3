"""Metadata indexes narrow pages in storage, and deletes keep every index consistent."""

from __future__ import annotations

from typing import Any

from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.base.id import uuid6

from checkpoint_base import ListQuery


def _thread(saver: Any, thread_id: str, runs: list[str]) -> None:
    """One checkpoint per entry of `runs`, each with a write, every 2nd step a new blob."""
    parent = None
    for step, run in enumerate(runs):
        cp = empty_checkpoint()
        cp["id"] = str(uuid6(clock_seq=step))
        cp["channel_values"] = {"a": step // 2, "b": "fixed"}
        cp["channel_versions"] = {"a": str(step // 2 + 1), "b": "1"}
        cfg: dict[str, Any] = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
        if parent:
            cfg["configurable"]["checkpoint_id"] = parent
        new = {"a": str(step // 2 + 1)} if step % 2 == 0 else {}
        if step == 0:
            new["b"] = "1"
        meta = {"source": "loop", "step": step, "run_id": run, "custom": "x" if step % 3 else "y"}
        stored = saver.put(cfg, cp, meta, new)
        saver.put_writes(stored, [("a", step)], "task")
        parent = stored["configurable"]["checkpoint_id"]


def _steps(rows: list[Any]) -> list[int]:
    import json

    return [json.loads(r.checkpoint.metadata)["step"] for r in rows]


def test_filters_on_indexed_keys_return_only_matching_rows(open_saver: Any) -> None:
    saver = open_saver()
    _thread(saver, "t", ["r1"] * 50 + ["r2"] * 50)

    def page(flt: dict[str, Any], limit: int = 100) -> list[int]:
        query = ListQuery(thread_id="t", checkpoint_ns="", filter=flt, limit=limit)
        return _steps(saver._run(saver.backend.list_page(query)))

    assert page({"step": 37}) == [37]  # storage returned 1 row, not 100
    assert page({"step": 37.0}) == [37]
    assert page({"step": True}) == []
    assert page({"run_id": "r2", "step": 60}) == [60]
    assert page({"run_id": "r2", "step": 10}) == []
    assert page({"run_id": "r2"}, limit=3) == [99, 98, 97]
    assert page({"source": "loop", "run_id": "r1"}, limit=2) == [49, 48]
    # `custom` is not indexed: storage narrows by `step` only, the saver re-checks the rest.
    assert page({"step": 37, "custom": "y"}) == [37]
    assert [t.metadata["step"] for t in saver.list({"configurable": {"thread_id": "t"}},
                                                   filter={"step": 37, "custom": "y"})] == []  # fmt: skip
    # ... also across threads and namespaces.
    cross = ListQuery(filter={"step": 37}, limit=10)
    assert _steps(saver._run(saver.backend.list_page(cross))) == [37]


def _counts(raw: Any, saver: Any, thread_id: str) -> dict[str, int]:
    keys = saver.backend.layout.thread(thread_id).keys
    return {
        "c": raw.hlen(keys[0]),
        "i": raw.zcard(keys[1]),
        "o": raw.zcard(keys[2]),
        "b": raw.hlen(keys[3]),
        "w": raw.hlen(keys[4]),
        "x": raw.zcard(keys[5]),
        "m": raw.zcard(keys[6]),
    }


def test_delete_for_runs_keeps_indexes_consistent(open_saver: Any, raw: Any) -> None:
    saver = open_saver()
    _thread(saver, "t", ["r1"] * 4 + ["r2"] * 4)
    _thread(saver, "u", ["r1"] * 3)
    assert _counts(raw, saver, "t") == {"c": 8, "i": 8, "o": 8, "b": 5, "w": 8, "x": 8, "m": 32}
    saver.delete_for_runs(["r1"])
    # 4 checkpoints left, each with 4 index entries (source, step, run_id, the run id);
    # blobs: "b" and the versions of "a" the remaining steps 4..7 read (3 and 4).
    assert _counts(raw, saver, "t") == {"c": 4, "i": 4, "o": 4, "b": 3, "w": 4, "x": 4, "m": 16}
    assert _counts(raw, saver, "u") == dict.fromkeys("ciobwxm", 0)
    assert [i.thread_id for i in saver.list_threads()] == ["t"]
    runs_key = saver.backend.layout.thread("t").keys[9]
    assert all(b"r1" not in m for m in raw.zrange(runs_key, 0, -1))
    listed = list(saver.list({"configurable": {"thread_id": "t"}}))
    assert [t.metadata["run_id"] for t in listed] == ["r2"] * 4
    assert listed[-1].checkpoint["channel_values"] == {"a": 2, "b": "fixed"}
    saver.delete_for_runs(["r2"])
    assert saver.list_threads() == []
    assert _counts(raw, saver, "t") == dict.fromkeys("ciobwxm", 0)


def test_prune_keeps_indexes_consistent(open_saver: Any, raw: Any) -> None:
    saver = open_saver()
    _thread(saver, "t", ["r1"] * 6)
    saver.prune(["t"])
    assert _counts(raw, saver, "t") == {"c": 1, "i": 1, "o": 1, "b": 2, "w": 1, "x": 1, "m": 4}
    (latest,) = saver.list({"configurable": {"thread_id": "t"}})
    assert latest.checkpoint["channel_values"] == {"a": 2, "b": "fixed"}
    assert latest.pending_writes == [("task", "a", 5)]
    assert [i.checkpoint_count for i in saver.list_threads()] == [1]
