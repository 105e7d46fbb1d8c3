"""`checkpointers migrate`: summaries, idempotence, --dry-run, --since, --thread, --verify
catching an altered record, Ctrl-C stopping between batches, and every URL form."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.sqlite import SqliteSaver as OfficialSqliteSaver

from checkpoint_base import ListQuery, connect
from checkpoint_base._cli_migrate import ProgressBar
from checkpoint_base._migrate import verify
from tests.migration.workload import assert_same_storage, resume_both

from .conftest import Cli, Filled


def _count(url: str, thread_ids: list[str]) -> int:
    with connect(url) as saver:
        return sum(len(list(saver.list({"configurable": {"thread_id": t}}))) for t in thread_ids)


def test_migrate_copies_verifies_and_is_idempotent(
    cli: Cli, filled: Filled, tmp_path: Path
) -> None:
    target = f"sqlite:///{tmp_path / 'target.db'}"
    total = _count(filled.url, filled.work.thread_ids)
    first = cli("migrate", filled.url, target, "--verify", "--batch", "5")
    assert first.status == 0, first.err
    assert f"copied {total} checkpoints of 4 threads" in first.out
    assert f"verify: 4 threads, {total} checkpoints identical in the target" in first.out
    assert "threads" in first.err and "ETA" in first.err  # the progress bar, on stderr
    again = cli("migrate", filled.url, target, "--verify")
    assert again.status == 0
    assert f"nothing to copy: {total} checkpoints already in the target" in again.out
    assert _count(target, filled.work.thread_ids) == total
    with connect(filled.url) as source, connect(target) as copy:
        assert_same_storage(source, copy, filled.work)
        resume_both(source, copy, filled.work)


def test_dry_run_writes_nothing(cli: Cli, filled: Filled, tmp_path: Path) -> None:
    target = f"sqlite:///{tmp_path / 'target.db'}"
    total = _count(filled.url, filled.work.thread_ids)
    result = cli("migrate", filled.url, target, "--dry-run")
    assert result.status == 0, result.err
    assert f"would copy {total} checkpoints of 4 threads" in result.out
    assert not (tmp_path / "target.db").exists() or _count(target, filled.work.thread_ids) == 0


def test_only_some_threads_and_since(cli: Cli, filled: Filled, tmp_path: Path) -> None:
    target = f"sqlite:///{tmp_path / 'target.db'}"
    one, two = filled.work.thread_ids[:2]
    result = cli("migrate", filled.url, target, "--thread", one, "--thread", two)
    assert result.status == 0, result.err
    assert _count(target, [one, two]) == _count(filled.url, [one, two])
    assert _count(target, filled.work.thread_ids[2:]) == 0
    future = cli("migrate", filled.url, target, "--since", "2999-01-01")
    assert future.status == 0 and "nothing to copy" in future.out
    assert _count(target, filled.work.thread_ids[2:]) == 0
    recent = cli("migrate", filled.url, target, "--since", "1h")
    assert recent.status == 0
    assert _count(target, filled.work.thread_ids) == _count(filled.url, filled.work.thread_ids)


def test_missing_thread_fails(cli: Cli, filled: Filled, tmp_path: Path) -> None:
    target = f"sqlite:///{tmp_path / 'target.db'}"
    result = cli("migrate", filled.url, target, "--thread", "no-such-thread")
    assert result.status == 1
    assert "not in the source: no-such-thread" in result.out


def _alter_metadata(url: str, thread_id: str) -> str:
    with connect(url) as saver:
        backend = saver.backend
        row = saver._run(backend.get(thread_id, "", None))
        assert row is not None
        meta = json.loads(row.checkpoint.metadata)
        meta["step"] = 999
        changed = dataclasses.replace(row.checkpoint, metadata=json.dumps(meta).encode())
        saver._run(backend.put_checkpoint(changed, row.blobs, row.writes))
        return changed.checkpoint_id


def _alter_write(url: str, thread_id: str) -> str:
    with connect(url) as saver:
        rows = saver._run(saver.backend.list_page(ListQuery(thread_id=thread_id, limit=100)))
        row = next(r for r in rows if any(w.idx < 0 for w in r.writes))
        special = next(w for w in row.writes if w.idx < 0)  # idx < 0 replaces a stored write
        altered = dataclasses.replace(special, data=special.data + b"\x00")
        saver._run(saver.backend.put_writes([altered]))
        return row.checkpoint.checkpoint_id


@pytest.mark.parametrize("alter", [_alter_metadata, _alter_write])
def test_verify_detects_an_altered_record(
    cli: Cli, filled: Filled, tmp_path: Path, alter: Any
) -> None:
    target = f"sqlite:///{tmp_path / 'target.db'}"
    assert cli("migrate", filled.url, target, "--verify").status == 0
    thread_id = next(t for t in filled.work.thread_ids if "agent-waiting" in t)
    altered = alter(target, thread_id)
    result = cli("migrate", filled.url, target, "--verify")
    assert result.status == 1
    assert "verify: 1 of 4 threads differ" in result.out
    assert f"thread {thread_id}: 1 different (first {altered})" in result.out


def test_ctrl_c_stops_between_batches_and_resumes(
    cli: Cli, filled: Filled, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = f"sqlite:///{tmp_path / 'target.db'}"
    total = _count(filled.url, filled.work.thread_ids)
    real_call = ProgressBar.__call__
    calls = []
    # Python's own handler, or SIG_IGN when the test run was started in the background
    # by a shell without job control: the command must leave whichever it found.
    handler = signal.getsignal(signal.SIGINT)

    def press_ctrl_c(self: ProgressBar, progress: Any) -> None:
        calls.append(progress)
        if len(calls) == 2:  # the user presses Ctrl-C while the migration runs
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # the handler runs in the main thread, between bytecodes
        real_call(self, progress)

    monkeypatch.setattr(ProgressBar, "__call__", press_ctrl_c)
    stopped = cli("migrate", filled.url, target, "--batch", "3")
    assert stopped.status == 130
    assert "stopping after the current batch" in stopped.err
    assert "run the same command again to resume" in stopped.err
    copied = _count(target, filled.work.thread_ids)
    assert 0 < copied < total
    monkeypatch.setattr(ProgressBar, "__call__", real_call)
    assert signal.getsignal(signal.SIGINT) is handler
    resumed = cli("migrate", filled.url, target, "--verify")
    assert resumed.status == 0, resumed.err
    assert f"{copied} checkpoints already in the target, skipped" in resumed.out
    assert _count(target, filled.work.thread_ids) == total


def test_official_sqlite_file_both_ways(cli: Cli, filled: Filled, tmp_path: Path) -> None:
    official = tmp_path / "official.db"
    out = cli("migrate", filled.url, f"langgraph-sqlite:///{official}", "--verify")
    assert out.status == 0, out.err
    with OfficialSqliteSaver.from_conn_string(str(official)) as saver, connect(filled.url) as ours:
        assert_same_storage(ours, saver, filled.work)
    back = f"sqlite:///{tmp_path / 'back.db'}"
    result = cli("migrate", f"langgraph-sqlite:///{official}", back, "--verify")
    assert result.status == 0, result.err
    with OfficialSqliteSaver.from_conn_string(str(official)) as saver, connect(back) as copy:
        assert verify(saver, copy).ok
        assert_same_storage(saver, copy, filled.work)
    listing = cli("threads", f"langgraph-sqlite:///{official}", "--json")
    assert sorted(t["thread_id"] for t in json.loads(listing.out)) == filled.work.thread_ids


def test_official_postgres_tables_both_ways(cli: Cli, filled: Filled, tmp_path: Path) -> None:
    servers = pytest.importorskip("checkpoint_base.testing.servers")
    psycopg = pytest.importorskip("psycopg")
    try:
        base = servers.postgres_url()
    except servers.ServerUnavailable as exc:
        pytest.skip(f"no PostgreSQL: {exc}")
    schema = f"cli_{os.getpid()}_{time.monotonic_ns()}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        url = (
            "langgraph-"
            + base
            + ("&" if "?" in base else "?")
            + f"options=-csearch_path%3D{schema}"
        )
        out = cli("migrate", filled.url, url, "--verify")
        assert out.status == 0, out.err
        back = f"sqlite:///{tmp_path / 'back.db'}"
        result = cli("migrate", url, back, "--verify")
        assert result.status == 0, result.err
        from langgraph.checkpoint.postgres import PostgresSaver as OfficialPostgresSaver
        from psycopg.rows import dict_row

        options = {
            "autocommit": True,
            "row_factory": dict_row,
            "options": f"-csearch_path={schema}",
        }
        with psycopg.connect(base, **options) as conn, connect(back) as copy:
            official = OfficialPostgresSaver(conn)
            with connect(filled.url) as ours:
                assert_same_storage(ours, official, filled.work)
            assert_same_storage(official, copy, filled.work)
        assert "CHECKPOINTS" in cli("threads", url).out
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def test_python_factory_url(
    cli: Cli, filled: Filled, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = tmp_path / "my_savers.py"
    module.write_text(
        "from langgraph.checkpoint.memory import InMemorySaver\n"
        "SAVER = InMemorySaver()\n"
        "def make():\n"
        "    return SAVER\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    result = cli("migrate", filled.url, "py:my_savers:make", "--verify")
    assert result.status == 0, result.err
    copy = f"sqlite:///{tmp_path / 'copy.db'}"
    back = cli("migrate", "py:my_savers:make", copy, "--verify")
    assert back.status == 0, back.err
    middle = sys.modules["my_savers"].SAVER
    with connect(filled.url) as ours, connect(copy) as again:
        assert_same_storage(ours, middle, filled.work)
        assert_same_storage(middle, again, filled.work)
    sys.modules.pop("my_savers", None)


@pytest.mark.parametrize("kind", ["postgres", "redis"])
def test_server_urls_of_our_savers(cli: Cli, filled: Filled, tmp_path: Path, kind: str) -> None:
    servers = pytest.importorskip("checkpoint_base.testing.servers")
    try:
        base = servers.postgres_url() if kind == "postgres" else servers.redis_url()
    except servers.ServerUnavailable as exc:
        pytest.skip(f"no {kind} server: {exc}")
    if kind == "redis":  # a key prefix of its own, so other tests' keys stay apart
        base += ("&" if "?" in base else "?") + f"key_prefix=cli{time.monotonic_ns()}"
    threads = [arg for t in filled.work.thread_ids for arg in ("--thread", t)]
    result = cli("migrate", filled.url, base, "--verify", *threads)
    assert result.status == 0, result.err
    assert "verify: 4 threads" in result.out
    listing = cli("history", base, filled.work.thread_ids[0], "--json")
    assert listing.status == 0, listing.err
    with connect(filled.url) as ours:
        assert len(json.loads(listing.out)) == len(
            list(
                ours.list(
                    {"configurable": {"thread_id": filled.work.thread_ids[0], "checkpoint_ns": ""}}
                )
            )
        )
    back = f"sqlite:///{tmp_path / 'back.db'}"
    assert cli("migrate", base, back, "--verify", *threads).status == 0
    with connect(filled.url) as ours, connect(back) as copy:
        assert_same_storage(ours, copy, filled.work)
