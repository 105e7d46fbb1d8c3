"""Several processes and many threads write one database file at once."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from checkpoint_sqlite import SqliteSaver

from ._worker import CHANNELS, value
from .conftest import worker

PROCESSES = 4
PUTS = 200


def _check_thread(saver: SqliteSaver, thread_id: str, count: int) -> None:
    listed = list(saver.list({"configurable": {"thread_id": thread_id}}))
    assert [t.metadata["step"] for t in listed] == list(reversed(range(count)))
    for tup in listed:
        step = tup.metadata["step"]
        assert tup.checkpoint["channel_values"] == {
            f"c{j}": value(step, j, 256) for j in range(CHANNELS)
        }
        if step:
            assert tup.parent_config is not None
    latest = saver.get_tuple({"configurable": {"thread_id": thread_id}})
    assert latest is not None and latest.metadata["step"] == count - 1


@pytest.mark.slow
def test_four_processes_put_200_each_on_one_file(db_path: str, tmp_path: Path) -> None:
    go = tmp_path / "go"
    procs = [
        worker("puts", db_path, f"proc-{i}", str(PUTS), "sync" if i % 2 else "async", str(go))
        for i in range(PROCESSES)
    ]
    go.touch()  # all start writing at once
    outcomes = [p.communicate(timeout=300) for p in procs]
    for proc, (_, err) in zip(procs, outcomes, strict=True):
        assert proc.returncode == 0, err
        assert "locked" not in err
    with SqliteSaver.from_conn_string(db_path) as saver:
        for i in range(PROCESSES):
            _check_thread(saver, f"proc-{i}", PUTS)
        threads = saver.list_threads()
        assert [t.thread_id for t in threads] == [f"proc-{i}" for i in range(PROCESSES)]
        assert all(t.checkpoint_count == PUTS for t in threads)


def test_many_threads_share_one_saver(db_path: str) -> None:
    from ._worker import _config, make

    errors: list[BaseException] = []
    with SqliteSaver.from_conn_string(db_path) as saver:

        def write(thread_id: str) -> None:
            try:
                parent = None
                for step in range(40):
                    checkpoint, versions = make(step, 256)
                    stored = saver.put(
                        _config(thread_id, parent), checkpoint, {"step": step}, versions
                    )
                    parent = stored["configurable"]["checkpoint_id"]
                    # Reads interleave with the other threads' writes.
                    assert saver.get_tuple(stored) is not None
            except BaseException as exc:  # reported below, in the test's thread
                errors.append(exc)

        workers = [threading.Thread(target=write, args=(f"th-{i}",)) for i in range(8)]
        for t in workers:
            t.start()
        for t in workers:
            t.join()
        assert not errors, errors
        for i in range(8):
            _check_thread(saver, f"th-{i}", 40)


def test_threads_with_their_own_savers(db_path: str) -> None:
    from ._worker import _config, make

    errors: list[BaseException] = []

    def write(thread_id: str) -> None:
        try:
            with SqliteSaver.from_conn_string(db_path, timeout=1.0) as saver:
                parent = None
                for step in range(30):
                    checkpoint, versions = make(step, 256)
                    stored = saver.put(
                        _config(thread_id, parent), checkpoint, {"step": step}, versions
                    )
                    parent = stored["configurable"]["checkpoint_id"]
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=write, args=(f"own-{i}",)) for i in range(6)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert not errors, errors
    with SqliteSaver.from_conn_string(db_path) as saver:
        for i in range(6):
            _check_thread(saver, f"own-{i}", 30)
