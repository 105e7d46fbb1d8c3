"""`setup`, `prune`, `bench` and `demo`."""

from __future__ import annotations

import contextlib
import sqlite3
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from checkpoint_base import connect
from checkpoint_base._cli_admin import prune_keep
from tests.conformance.builders import checkpoint as build_checkpoint
from tests.conformance.builders import config as build_config
from tests.conformance.test_graph_delta import counting_graph, run_config

from .conftest import Cli, Filled, assert_one_line_error


def _ids(url: str, thread_id: str, ns: str | None = None) -> list[str]:
    config: Any = {"configurable": {"thread_id": thread_id}}
    if ns is not None:
        config["configurable"]["checkpoint_ns"] = ns
    with connect(url) as saver:
        return [t.config["configurable"]["checkpoint_id"] for t in saver.list(config)]


def _namespaces(url: str, thread_id: str) -> set[str]:
    with connect(url) as saver:
        return {
            t.config["configurable"]["checkpoint_ns"]
            for t in saver.list({"configurable": {"thread_id": thread_id}})
        }


def _tables(path: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_setup_creates_the_schema(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    result = cli("setup", f"sqlite:///{path}")
    assert result.status == 0, result.err
    assert result.out.startswith("ready: sqlite:///")
    tables = _tables(path)
    assert tables, "setup created no table"
    assert cli("setup", f"sqlite:///{path}").status == 0  # idempotent

    official = tmp_path / "official.db"
    assert cli("setup", f"langgraph-sqlite:///{official}").status == 0
    assert {"checkpoints", "writes"} <= _tables(official)


def test_prune_keep_last_per_namespace(cli: Cli, filled: Filled) -> None:
    thread_id = next(t for t in filled.work.thread_ids if "pipeline-waiting" in t)
    before = {ns: _ids(filled.url, thread_id, ns) for ns in _namespaces(filled.url, thread_id)}
    assert len(before) == 2 and all(len(ids) > 2 for ids in before.values())
    dry = cli("prune", filled.url, "--keep-last", "2", "--thread", thread_id, "--dry-run")
    assert dry.status == 0, dry.err
    doomed = sum(len(ids) - 2 for ids in before.values())
    assert f"would delete {doomed} checkpoints in 1 of 1 threads" in dry.out
    assert {ns: _ids(filled.url, thread_id, ns) for ns in before} == before
    done = cli("prune", filled.url, "--keep-last", "2", "--thread", thread_id)
    assert done.status == 0
    assert f"deleted {doomed} checkpoints in 1 of 1 threads" in done.out
    assert {ns: _ids(filled.url, thread_id, ns) for ns in before} == {
        ns: ids[:2] for ns, ids in before.items()
    }
    others = [t for t in filled.work.thread_ids if t != thread_id]
    assert all(len(_ids(filled.url, t)) > 2 for t in others), "other threads were pruned"


def test_prune_older_than_keeps_the_newest(cli: Cli, filled: Filled) -> None:
    kept_now = cli("prune", filled.url, "--older-than", "1h")
    assert kept_now.status == 0 and "deleted 0 checkpoints" in kept_now.out
    everything = cli("prune", filled.url, "--older-than", "0s")
    assert everything.status == 0
    for thread_id in filled.work.thread_ids:
        for ns in _namespaces(filled.url, thread_id):
            assert len(_ids(filled.url, thread_id, ns)) == 1  # the newest of each namespace stays


def test_prune_keeps_what_a_delta_channel_needs(cli: Cli, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'delta.db'}"
    config = run_config("delta-thread")
    with connect(url) as saver:
        graph = counting_graph().compile(checkpointer=saver)
        graph.invoke({"items": [], "n": 0, "stop": 17}, config)
        values = graph.get_state(config).values
        stored = list(saver.list(config))
        total = len(stored)
        assert "items" not in stored[0].checkpoint["channel_values"], "the head holds a snapshot"
    result = cli("prune", url, "--keep-last", "1")
    assert result.status == 0, result.err
    with connect(url) as saver:
        kept = list(saver.list(config))
        assert 1 < len(kept) < total, "the delta chain was not kept, or nothing was pruned"
        assert "items" in kept[-1].checkpoint["channel_values"]  # back to a stored snapshot
        fresh = counting_graph().compile(checkpointer=saver)
        assert (
            fresh.get_state(config).values
            == values
            == {"items": list(range(17)), "n": 17, "stop": 17}
        )
        assert fresh.invoke({"stop": 23}, config)["items"] == list(range(23))


def test_prune_refuses_official_storage(cli: Cli, filled: Filled, tmp_path: Path) -> None:
    official = tmp_path / "official.db"
    assert cli("migrate", filled.url, f"langgraph-sqlite:///{official}").status == 0
    result = cli("prune", f"langgraph-sqlite:///{official}", "--keep-last", "1")
    assert_one_line_error(result, "prune works on savers of this package")


def test_prune_unknown_thread(cli: Cli, filled: Filled) -> None:
    result = cli("prune", filled.url, "--keep-last", "1", "--thread", "nope")
    assert_one_line_error(result, "no thread 'nope'")


def test_bench_runs_the_harness(cli: Cli) -> None:
    pytest.importorskip("benchmarks")
    result = cli("bench", "--help")  # --help goes to the harness, not to `checkpointers bench`
    assert result.status == 0
    assert "--workload" in result.out and "--backend" in result.out


def test_bench_without_the_harness(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "benchmarks", None)  # import benchmarks -> ImportError
    result = cli("bench")
    assert_one_line_error(result, "the benchmark harness is not installed")


def test_demo(cli: Cli, tmp_path: Path) -> None:
    result = cli("demo", "--url", f"sqlite:///{tmp_path / 'demo.db'}")
    assert result.status == 0, result.err
    assert "agent> The answer is 84." in result.out
    assert "(reconnected: resuming from storage)" in result.out


def test_prune_of_a_long_thread_holds_its_records_not_its_values(tmp_path: Path) -> None:
    """The policy reads every checkpoint of the thread, but keeps only their records: 120
    checkpoints with a 50 KB value each (6 MB) peak at a small part of that."""
    with connect(f"sqlite:///{tmp_path / 'long.db'}") as saver:
        parent = None
        for step in range(120):
            values = {"big": f"{step:08d}" * 6_250, "const": "C"}
            versions = {"big": step + 1, "const": 1}
            stored = saver.put(
                build_config("long", "", parent),
                build_checkpoint(values, versions),
                {"step": step},
                versions if step == 0 else {"big": step + 1},
            )
            parent = stored["configurable"]["checkpoint_id"]
        tracemalloc.start()
        try:
            total, keep = saver._run(prune_keep(saver.backend, "long", 10, None))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert (total, len(keep)) == (120, 10)
    assert peak < 2_000_000, f"peak {peak:,} bytes for a 6 MB thread"
