"""Every error is one line on stderr that says what to do, with a non-zero status."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from checkpoint_sqlite import SqliteSaver

from ..conformance.builders import checkpoint, config
from .conftest import Cli, Filled, assert_one_line_error


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["threads", "nourl"], ["not a URL: 'nourl'", "sqlite:///checkpoints.db"]),
        (
            ["threads", "foo://x"],
            ["no backend for URL scheme 'foo'", "installed schemes", "--help"],
        ),
        (["history", "mongodb://h/db", "t"], ["no backend for URL scheme 'mongodb'"]),
        (["threads", "sqlite://relative.db"], ["bad URL", "use sqlite:///relative/path.db"]),
        (["threads", "langgraph-sqlite:/x.db"], ["not a URL"]),
        (["threads", "memory://"], ["memory:// lives only as long as this command"]),
        (["threads", "py:no_such_module_here:f"], ["cannot import 'no_such_module_here'"]),
        (["threads", "py:json"], ["use py:package.module:factory"]),
        (["threads", "py:json:dumps"], ["json:dumps() failed", "TypeError"]),
        (["threads", "py:json:JSONDecoder"], ["gave JSONDecoder, not a checkpointer"]),
    ],
)
def test_bad_urls(cli: Cli, argv: list[str], needles: list[str]) -> None:
    assert_one_line_error(cli(*argv), *needles)


def test_missing_database_file(cli: Cli, tmp_path: Path) -> None:
    missing = tmp_path / "nope.db"
    for url in (f"sqlite:///{missing}", f"langgraph-sqlite:///{missing}"):
        assert_one_line_error(cli("threads", url), "no database file at", "check the path")
    assert not missing.exists(), "reading created the file"


def test_changing_commands_do_not_create_a_missing_database(cli: Cli, tmp_path: Path) -> None:
    """A mistyped path given to prune, delete or compact is an error, not a new empty
    database that the command then reports as pruned, deleted or compacted."""
    missing = tmp_path / "nope.db"
    for scheme in ("sqlite", "langgraph-sqlite"):
        url = f"{scheme}:///{missing}"
        for argv in (
            ["prune", url, "--keep-last", "1"],
            ["delete", url, "--idle", "1d"],
            ["compact", url],
        ):
            assert_one_line_error(cli(*argv), "no database file at", "check the path")
            assert not missing.exists(), argv
    assert cli("setup", f"sqlite:///{missing}").status == 0  # setup creates it
    assert missing.exists()


def test_unknown_thread_checkpoint_and_namespace(cli: Cli, filled: Filled) -> None:
    thread = filled.work.thread_ids[0]
    assert_one_line_error(
        cli("history", filled.url, "no-such"), "no thread 'no-such'", "checkpointers threads"
    )
    assert_one_line_error(cli("show", filled.url, "no-such"), "no thread 'no-such'")
    assert_one_line_error(
        cli("show", filled.url, thread, "bad-id"), "no checkpoint 'bad-id'", "checkpointers history"
    )
    assert_one_line_error(cli("history", filled.url, thread, "--ns", "zz"), "no namespace 'zz'")


def test_unreachable_servers(cli: Cli) -> None:
    start = time.monotonic()
    result = cli("threads", "postgresql://nobody@127.0.0.1:1/db")
    assert_one_line_error(
        result,
        "cannot reach PostgreSQL at postgresql://nobody@127.0.0.1:1/db",
        "is the server running",
    )
    assert result.err.startswith("checkpointers threads: unreachable:")
    secret = cli("migrate", "langgraph-postgres://u:secret@127.0.0.1:1/db", "sqlite:///x.db")
    assert_one_line_error(secret, "cannot reach PostgreSQL", "u:***@")
    assert "secret" not in secret.err
    if _importable("redis"):
        assert_one_line_error(
            cli("threads", "redis://127.0.0.1:1/0?key_prefix=app"),
            "cannot reach redis://127.0.0.1:1/0?key_prefix=app",
            "Connection refused",
            "is the server running",
        )
    assert time.monotonic() - start < 20, "an unreachable server must fail fast"


def _importable(name: str) -> bool:
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def test_missing_driver_names_the_extra(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    result = cli("threads", "postgresql://me@127.0.0.1:1/db")
    assert_one_line_error(result, "pip install 'checkpointers[postgres]'")


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["--since", "yesterday"], ["not a time: 'yesterday'", "7d"]),
        (["--batch", "0"], ["batch must be a number >= 1"]),
    ],
)
def test_bad_migrate_options(
    cli: Cli, filled: Filled, tmp_path: Path, argv: list[str], needles: list[str]
) -> None:
    assert_one_line_error(
        cli("migrate", filled.url, f"sqlite:///{tmp_path / 't.db'}", *argv), *needles
    )


def test_bad_prune_duration(cli: Cli, filled: Filled) -> None:
    assert_one_line_error(
        cli("prune", filled.url, "--older-than", "a while"), "not a duration", "7d"
    )


def test_same_source_and_target(cli: Cli, filled: Filled) -> None:
    assert_one_line_error(cli("migrate", filled.url, filled.url), "source and target are the same")


def test_debug_shows_the_traceback(cli: Cli) -> None:
    result = cli("--debug", "threads", "foo://x")
    assert result.status == 1
    assert "Traceback" in result.err and "UnknownBackendError" in result.err


def test_a_reader_that_stops_early_gets_no_error(filled: Filled) -> None:
    """`checkpointers history URL | head -1`: no "Broken pipe" message, SIGPIPE's status."""
    thread_id = filled.work.thread_ids[0]
    proc = subprocess.Popen(
        [sys.executable, "-m", "checkpoint_base._cli", "history", filled.url, thread_id],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before the command writes anything: its first write fails
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    assert err == ""


def test_postgres_url_schema_and_a_bad_parameter(cli: Cli) -> None:
    from checkpoint_base.testing import servers
    from checkpoint_postgres._testing import fresh_schema

    base = servers.postgres_url()
    joiner = "&" if "?" in base else "?"
    name = fresh_schema("cli")
    ready = cli("setup", f"{base}{joiner}schema={name}")
    assert ready.status == 0 and "ready" in ready.out
    listed = cli("threads", f"{base}{joiner}schema={name}")
    assert listed.status == 0, listed.err
    bad = cli("threads", f"{base}{joiner}shema={name}")
    assert_one_line_error(bad, "malformed PostgreSQL URL", "shema")


def test_an_export_langgraph_storage_cannot_hold_is_refused_in_one_line(
    cli: Cli, tmp_path: Path
) -> None:
    source = tmp_path / "ours.db"
    with SqliteSaver.from_conn_string(str(source)) as saver:
        saver.put(config("t1"), checkpoint({"raw": bytearray(b"x")}), {}, {"raw": 1})
    result = cli("migrate", f"sqlite:///{source}", f"langgraph-sqlite:///{tmp_path / 'lg.db'}")
    assert_one_line_error(
        result, "error: the value of channel 'raw'", "of thread 't1'", "it is a bytearray"
    )
    assert "unexpected" not in result.err


def test_a_postgres_schema_without_the_tables_is_not_created(cli: Cli, filled: Filled) -> None:
    """A mistyped `?schema=` given to a command that reads or changes a store is an error,
    not a new schema whose empty tables the command then reports on (opening a saver runs
    setup(), which created them); a dry-run migration into it reads it as empty and creates
    nothing either. `setup` and a migration do create it."""
    import psycopg

    from checkpoint_base.testing import servers
    from checkpoint_postgres._testing import drop_schema, fresh_schema

    base = servers.postgres_url()
    name = fresh_schema("cli")
    url = f"{base}{'&' if '?' in base else '?'}schema={name}"

    def exists() -> bool:
        with psycopg.connect(base) as conn:
            query = "SELECT 1 FROM pg_namespace WHERE nspname = %s"
            return conn.execute(query, (name,)).fetchone() is not None

    try:
        for argv in (
            ["threads", url],
            ["history", url, "t"],
            ["check", url],
            ["prune", url, "--keep-last", "1"],
            ["delete", url, "--idle", "1d"],
            ["compact", url],
        ):
            result = cli(*argv)
            assert_one_line_error(result, f"no checkpoint tables in schema {name!r}", "setup URL")
            assert not exists(), argv
        dry = cli("migrate", filled.url, url, "--dry-run")
        assert dry.status == 0, dry.err
        assert "(does not exist yet)" in dry.out and not exists()
        assert cli("setup", url).status == 0 and exists()
        listed = cli("threads", url)
        assert listed.status == 0 and "no threads" in listed.out, listed
    finally:
        drop_schema(base, name)


def test_a_redis_key_prefix_never_set_up_is_not_written(cli: Cli, filled: Filled) -> None:
    """A mistyped `?key_prefix=` given to a command that reads or changes a store is an
    error, not a layout key written under it (opening a saver runs setup(), which wrote it)
    and an empty store reported on; a dry-run migration into it reads it as empty and writes
    nothing either. `setup` does write it."""
    from checkpoint_base.testing import servers
    from checkpoint_redis._testing import drop_prefix, fresh_prefix
    from checkpoint_redis._urls import sync_client

    base, prefix = servers.redis_url(), fresh_prefix()
    url = f"{base}{'&' if '?' in base else '?'}key_prefix={prefix}"
    client = sync_client(base)

    def written() -> list[bytes]:
        return list(client.scan_iter(match=f"{prefix}:*", count=1000))

    try:
        for argv in (
            ["threads", url],
            ["history", url, "t"],
            ["check", url],
            ["prune", url, "--keep-last", "1"],
            ["delete", url, "--idle", "1d"],
        ):
            result = cli(*argv)
            assert_one_line_error(
                result, f"no checkpoints under key prefix {prefix!r}", "setup URL"
            )
            assert written() == [], argv
        dry = cli("migrate", filled.url, url, "--dry-run")
        assert dry.status == 0, dry.err
        assert written() == []
        assert cli("setup", url).status == 0 and written()
        listed = cli("threads", url)
        assert listed.status == 0 and "no threads" in listed.out, listed
    finally:
        drop_prefix(base, prefix)
        client.close()
