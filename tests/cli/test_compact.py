"""`checkpointers compact`, the hint `delete` and `prune` give after freeing space, and
`threads --largest`, which finds the threads that take the space."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from checkpoint_base import connect
from checkpoint_base._cli_format import format_bytes
from tests.conformance.builders import checkpoint, config

from .conftest import Cli, assert_one_line_error
from .test_delete import _store_of_its_own

_BLOB = 20_000
_SIZE = r"([\d.]+ (?:B|kB|MB|GB))"


def _bytes(text: str) -> float:
    """ "565.2 kB" -> 565200.0 (as `format_bytes` writes sizes)."""
    number, unit = text.split()
    return float(number) * {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}[unit]


def _fill(url: str, threads: int, steps: int = 3) -> list[str]:
    ids = [f"t{i}" for i in range(threads)]
    with connect(url) as saver:
        saver.setup()
        for tid in ids:
            parent = None
            for step in range(steps):
                versions = {"blob": step + 1}
                stored = saver.put(
                    config(tid, "", parent),
                    checkpoint({"blob": os.urandom(_BLOB)}, versions),
                    {"step": step},
                    versions,
                )
                parent = stored["configurable"]["checkpoint_id"]
    return ids


def _file(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def _count(url: str, thread_id: str) -> int:
    with connect(url) as saver:
        return len(list(saver.list(config(thread_id))))


def test_delete_then_compact_gives_the_file_back(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    url = f"sqlite:///{path}"
    ids = _fill(url, 10)
    deleted = cli("delete", url, *(a for t in ids[1:] for a in ("--thread", t)))
    assert deleted.status == 0, deleted.err
    hint = deleted.out.strip().splitlines()[-1]
    assert hint.endswith(f"`checkpointers compact {url}` gives it back to the disk"), hint
    free = re.match(_SIZE + " of the storage is free now", hint)
    assert free is not None and _bytes(free.group(1)) >= 9 * 3 * _BLOB * 0.9, hint

    size = path.stat().st_size
    dry = cli("compact", url, "--dry-run")
    assert dry.status == 0, dry.err
    assert re.search(f": {_SIZE}, free inside it: {_SIZE}$", dry.out.strip()), dry.out
    assert path.stat().st_size == size  # a dry run changes nothing

    before = _file(path)
    done = cli("compact", url)
    assert done.status == 0, done.err
    assert "(writers wait until it is done)" in done.err  # said before the work starts
    gave = re.search(f"compacted .*: {_SIZE} -> {_SIZE} \\(gave back {_SIZE}\\) in ", done.out)
    assert gave is not None, done.out
    assert _bytes(gave.group(3)) >= 9 * 3 * _BLOB * 0.9, done.out
    after = _file(path)
    assert after < before - 9 * 3 * _BLOB * 0.9, (before, after)
    assert not os.path.exists(f"{path}-wal") or os.path.getsize(f"{path}-wal") == 0
    assert _count(url, ids[0]) == 3
    assert all(_count(url, t) == 0 for t in ids[1:])


def test_prune_gives_the_hint(cli: Cli, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    _fill(url, 2, steps=6)
    result = cli("prune", url, "--keep-last", "1")
    assert result.status == 0, result.err
    lines = result.out.strip().splitlines()
    assert lines[-2] == "deleted 10 checkpoints in 2 of 2 threads"
    assert lines[-1].endswith(f"`checkpointers compact {url}` gives it back to the disk")
    dry = cli("prune", url, "--keep-last", "1")  # nothing more to delete: no hint
    assert dry.out.strip().splitlines()[-1] == "deleted 0 checkpoints in 0 of 2 threads"


def test_compact_refuses_official_storage(cli: Cli, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ours.db'}"
    _fill(url, 1)
    official = tmp_path / "official.db"
    assert cli("migrate", url, f"langgraph-sqlite:///{official}").status == 0
    result = cli("compact", f"langgraph-sqlite:///{official}")
    assert_one_line_error(result, "compact works on savers of this package", "VACUUM")


@pytest.fixture(params=["postgres", "redis", "redis-cluster"])
def server_url(request: pytest.FixtureRequest) -> Iterator[str]:
    yield from _store_of_its_own(request.param)


def test_compact_on_every_server(cli: Cli, server_url: str) -> None:
    ids = _fill(server_url, 6)
    deleted = cli("delete", server_url, *(a for t in ids[1:] for a in ("--thread", t)))
    assert deleted.status == 0, deleted.err
    plain = cli("compact", server_url)
    full = cli("compact", server_url, "--full")
    assert plain.status == 0 and full.status == 0, (plain.err, full.err)
    if server_url.startswith("redis"):
        assert deleted.out.strip().splitlines()[-1] == "deleted 5 threads of 5 named"
        for result in (plain, full):
            assert result.out.strip().endswith("frees space as it deletes")
    else:
        hint = deleted.out.strip().splitlines()[-1]
        assert hint.startswith("new writes reuse the space freed") and "--full" in hint, hint
        assert "wait" not in plain.err and "reads and writes of its tables wait" in full.err
        assert "--full gives back all of it" in plain.out
        first = re.search(f": {_SIZE} -> {_SIZE}", plain.out)
        last = re.search(f": {_SIZE} -> {_SIZE}", full.out)
        assert first is not None and last is not None, (plain.out, full.out)
        before, after = _bytes(first.group(1)), _bytes(last.group(2))
        assert after < before - 5 * 3 * _BLOB * 0.9, (plain.out, full.out)
        assert "--full gives back" not in full.out
    assert _count(server_url, ids[0]) == 3


def test_compact_names_the_transactions_it_could_not_wait_out(cli: Cli) -> None:
    import psycopg

    for url in _store_of_its_own("postgres"):
        ids = _fill(url, 4)
        name = f"cp-report-{os.getpid()}"
        with psycopg.connect(url, application_name=name) as reader:
            reader.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            reader.execute("SELECT 1")  # sees the rows deleted next until it ends
            assert cli("delete", url, *(a for t in ids[1:] for a in ("--thread", t))).status == 0
            dry = cli("compact", url, "--dry-run")
            held = cli("compact", url, "--full", "--wait", "0.2")
            pid = reader.info.backend_pid
        assert held.status == 0, held.err
        lines = held.err.strip().splitlines()
        assert lines[1].startswith("warning: ") and "still ran after 0.2 s (--wait)" in lines[1]
        assert any(
            line.startswith(f"  session {pid} (") and f"application '{name}'" in line
            for line in lines[2:]
        ), held.err
        assert dry.status == 0 and "compact waits up to --wait for them" in dry.out, dry.out
        assert f"\n  session {pid} (" in dry.out
        gave = cli("compact", url, "--full", "--wait", "1m")
        assert gave.status == 0 and "warning" not in gave.err, gave.err
        sizes = re.search(f": {_SIZE} -> {_SIZE}", gave.out)
        assert sizes is not None, gave.out
        assert _bytes(sizes.group(2)) < _bytes(sizes.group(1)) - 3 * 3 * _BLOB * 0.9, gave.out


def test_compact_says_when_a_reader_kept_the_wal(cli: Cli, tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "c.db"
    url = f"sqlite:///{path}"
    ids = _fill(url, 4)
    assert cli("delete", url, *(a for t in ids[1:] for a in ("--thread", t))).status == 0
    before = _file(path)
    reader = sqlite3.connect(path, isolation_level=None)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM sqlite_master").fetchall()
        held = cli("compact", url + "?timeout=0.2")
        assert _file(path) > before  # the compacted pages wait in the WAL
    finally:
        reader.close()
    assert held.status == 0, held.err
    warning = held.err.strip().splitlines()[-1]
    assert warning.startswith("warning: a reader of the database") and "WAL" in warning
    again = cli("compact", url)
    assert again.status == 0 and "warning" not in again.err, again.err
    assert _file(path) < before - 3 * 3 * _BLOB * 0.9  # the deleted threads' blobs


@pytest.mark.parametrize(
    ("wait", "needle"), [("soon", "not a duration: 'soon'"), ("-1", "must be 0 or more")]
)
def test_compact_refuses_a_bad_wait(cli: Cli, tmp_path: Path, wait: str, needle: str) -> None:
    path = tmp_path / "c.db"
    result = cli("compact", f"sqlite:///{path}", "--wait", wait)
    assert result.status == 2 and "Traceback" not in result.err  # argparse's usage error
    error = result.err.strip().splitlines()[-1]
    assert error.startswith("checkpointers compact: error: argument --wait: "), result.err
    assert needle in error and not path.exists()


def test_threads_largest_reads_every_thread(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from checkpoint_base import _cli_inspect

    url = f"sqlite:///{tmp_path / 'l.db'}"
    with connect(url) as saver:
        for i, kb in enumerate([5, 40, 1, 80, 20, 60]):
            values = {"blob": os.urandom(kb * 1000)}
            saver.put(config(f"t{i}"), checkpoint(values), {}, {"blob": 1})
        everything = saver.list_threads(limit=100)
    monkeypatch.setattr(_cli_inspect, "_EVERY", 0.0)  # a progress line per thread
    result = cli("threads", url, "--largest", "3")
    assert result.status == 0, result.err
    listed = [line.split()[0] for line in result.out.splitlines()[1:4]]
    assert listed == ["t3", "t5", "t1"]  # 80, 60 and 40 kB
    total = sum(t.size_bytes or 0 for t in everything)
    assert result.out.strip().splitlines()[-1] == (
        f"6 threads take {format_bytes(total)} in all; the 3 largest above"
    )
    every = cli("threads", url, "--largest", "10")
    assert every.out.strip().splitlines()[-1] == f"6 threads take {format_bytes(total)} in all"
    assert len(every.out.strip().splitlines()) == 1 + 6 + 1
    assert "reading threads: 6 so far" in result.err
    as_json = cli("threads", url, "--largest", "2", "--json")
    assert [t["thread_id"] for t in json.loads(as_json.out)] == ["t3", "t5"]
    one = f"sqlite:///{tmp_path / 'one.db'}"
    _fill(one, 1)
    alone = cli("threads", one, "--largest", "3")
    assert alone.out.strip().splitlines()[-1].startswith("1 thread takes ")
    refused = cli("threads", url, "--largest", "2", "--limit", "5")
    assert_one_line_error(refused, "--largest reads every thread")
