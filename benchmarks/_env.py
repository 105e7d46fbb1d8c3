"""The environment of a run: machine, versions, servers and their durability settings.

Benchmarks run on servers with their durable defaults: PostgreSQL with fsync,
synchronous_commit and full_page_writes on, Redis with its default snapshots (RDB `save`
rules, no AOF). `durable_servers` points the registry's targets at such servers by setting
`CHECKPOINTERS_TEST_*_URL` for the run (the test suite's servers turn durability off), unless
the variable is already set: then that server is used as it is, and its settings are reported.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib.metadata
import os
import platform
import sqlite3
import subprocess
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from checkpoint_base.testing.targets import Target

__all__ = ["durable_servers", "environment", "git_commit", "server_settings", "sqlite_settings"]

PACKAGES = (
    "checkpointers",
    "langgraph",
    "langgraph-checkpoint",
    "langgraph-checkpoint-sqlite",
    "langgraph-checkpoint-postgres",
    "langgraph-checkpoint-plainredis",
    "langgraph-checkpoint-redis",
    "langchain-core",
    "aiosqlite",
    "psycopg",
    "psycopg-binary",
    "psycopg-pool",
    "redis",
    "msgpack",
    "ormsgpack",
    "matplotlib",
)

# server kind -> (env var, backend family)
_KINDS = {
    "postgres": ("CHECKPOINTERS_TEST_POSTGRES_URL", "postgres"),
    "pgbouncer": ("CHECKPOINTERS_TEST_PGBOUNCER_URL", "postgres"),
    "redis": ("CHECKPOINTERS_TEST_REDIS_URL", "redis"),
    "redis_cluster": ("CHECKPOINTERS_TEST_REDIS_CLUSTER_URL", "redis"),
}


def _kinds_needed(targets: Sequence[Target]) -> list[str]:
    kinds: list[str] = []
    for t in targets:
        if t.backend == "postgres":
            kinds.append("postgres")
            if "pgbouncer" in t.name:
                kinds.append("pgbouncer")
        elif t.backend == "redis":
            kinds.append("redis_cluster" if t.capabilities.cluster else "redis")
    return list(dict.fromkeys(kinds))


@contextlib.contextmanager
def durable_servers(targets: Sequence[Target]) -> Iterator[dict[str, str]]:
    """Make the targets' servers durable ones for the duration; yields kind -> URL.

    Raises:
        ServerUnavailable: a server the targets need could not be had.
    """
    from checkpoint_base.testing import servers

    starters = {
        "postgres": servers.postgres_url,
        "pgbouncer": servers.pgbouncer_url,
        "redis": servers.redis_url,
        "redis_cluster": servers.redis_cluster_url,
    }
    saved: dict[str, str | None] = {}
    urls: dict[str, str] = {}
    try:
        for kind in _kinds_needed(targets):
            var = _KINDS[kind][0]
            saved[var] = os.environ.get(var)
            url = saved[var] or starters[kind](durable=True)
            os.environ[var] = url
            urls[kind] = url
        yield urls
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


def _pg_settings(url: str) -> dict[str, Any]:
    import psycopg

    names = (
        "server_version",
        "fsync",
        "synchronous_commit",
        "full_page_writes",
        "wal_level",
        "shared_buffers",
        "max_connections",
    )
    out: dict[str, Any] = {}
    # PgBouncer does not forward SHOW of server settings reliably: ask with one query.
    with psycopg.connect(url, autocommit=True, prepare_threshold=None) as conn:
        rows = conn.execute(
            "SELECT name, setting || coalesce(' ' || unit, '') FROM pg_settings "
            "WHERE name = ANY(%s)",
            (list(names),),
        ).fetchall()
    out.update({name: value for name, value in rows})
    return out


def _redis_settings(url: str) -> dict[str, Any]:
    from ._floor_redis import redis_client

    client = redis_client(url, sync=True)
    try:
        info = client.info("server")
        if isinstance(info, dict) and "redis_version" not in info:  # cluster: per node
            info = next(iter(info.values()))
        out: dict[str, Any] = {"redis_version": info.get("redis_version")}
        for name in ("save", "appendonly", "appendfsync", "maxmemory-policy"):
            value = client.config_get(name)
            if isinstance(value, dict) and name not in value:  # cluster: per node
                value = next(iter(value.values()))
            out[name] = value.get(name) if isinstance(value, dict) else value
    finally:
        client.close()
    return out


_SYNCHRONOUS = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


def sqlite_settings(targets: Sequence[Target]) -> dict[str, Any]:
    """Journal mode and synchronous setting of each SQLite subject, read where possible."""
    from ._floors import SqliteFloor

    out: dict[str, Any] = {
        "floor": list(SqliteFloor(sync=True, path=":memory:").pragmas[:2]),
        "floor (sqlite-full)": list(
            SqliteFloor(sync=True, path=":memory:", synchronous="full").pragmas[:2]
        ),
    }
    try:
        from checkpoint_sqlite._conn import connection_pragmas

        out["ours"] = list(connection_pragmas("checkpoints.db"))
        out["ours (sqlite-full)"] = list(connection_pragmas("checkpoints.db", "full"))
    except ImportError:
        pass
    for target in targets:
        if target.backend != "sqlite" or target.official_sync is None:
            continue
        try:
            with target.official_sync() as saver:
                conn = saver.conn
                mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
                sync = conn.execute("PRAGMA synchronous").fetchone()[0]
        except Exception as exc:  # reported, never fatal
            out[f"official ({target.name})"] = repr(exc)
            continue
        out[f"official ({target.name})"] = [
            f"PRAGMA journal_mode={mode}",
            f"PRAGMA synchronous={_SYNCHRONOUS.get(sync, sync)}",
        ]
    return out


def server_settings(urls: dict[str, str]) -> dict[str, Any]:
    """Each server's version and durability settings; an error string when unreadable."""
    out: dict[str, Any] = {}
    for kind, url in urls.items():
        try:
            settings = _pg_settings(url) if kind in ("postgres", "pgbouncer") else None
            if settings is None:
                settings = _redis_settings(url)
        except Exception as exc:  # reported in the JSON, never fatal
            settings = {"error": repr(exc)}
        out[kind] = {"url": _redact(url), **settings}
    return out


def _redact(url: str) -> str:
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}@{host}"


def _git(*args: str) -> str | None:
    """The output of a git command on this checkout, or None when git fails or is absent."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        out = subprocess.run(
            ["git", "-C", here, *args], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def git_commit() -> str | None:
    """The commit of this checkout, or None outside git."""
    return (_git("rev-parse", "HEAD") or "").strip() or None


def git_changed() -> list[str] | None:
    """Tracked files of this checkout that differ from its commit (the code measured is
    then not exactly `git_commit`); None outside git."""
    out = _git("status", "--porcelain", "--untracked-files=no")
    if out is None:
        return None
    return [line[3:] for line in out.splitlines() if line.strip()]


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def _memory_total() -> int | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def environment(
    argv: Sequence[str], servers: dict[str, Any], sqlite: dict[str, Any]
) -> dict[str, Any]:
    """Machine, Python, package versions, servers, durability and the command line."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "started_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": ["python", "-m", "benchmarks", *argv],
        "git_commit": git_commit(),
        "git_changed": git_changed(),
        "machine": {
            "os": platform.platform(),
            "cpu_count": os.cpu_count(),
            "cpu_model": _cpu_model(),
            "memory_bytes": _memory_total(),
            "machine": platform.machine(),
        },
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "sqlite_library": sqlite3.sqlite_version,
        "packages": versions,
        "servers": servers,
        "sqlite": sqlite,
        "durability": (
            "PostgreSQL and Redis run with their durable defaults (see servers). SQLite files "
            "are on the machine's local disk; see sqlite for each subject's journal mode and "
            "synchronous setting (the raw floor uses our saver's settings)."
        ),
    }
