"""Real servers for tests: each kind starts, answers, honours env URLs and stops with its owner."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from redis import Redis
from redis.cluster import ClusterNode, RedisCluster

from checkpoint_base.testing import _containers, servers
from checkpoint_base.testing._cluster import external_cluster_ok
from checkpoint_base.testing._redis import RespError, command
from checkpoint_base.testing._tls import client_context
from checkpoint_base.testing.servers import ServerUnavailable

ROOT = Path(__file__).resolve().parents[1]


def _ours(kind: str) -> bool:
    """Whether this kind comes from local binaries (no env URL overrides it)."""
    return not os.environ.get(servers.ENV_VARS[kind])


def _cluster_ports(url: str) -> list[int]:
    return [int(addr.rsplit(":", 1)[1]) for addr in url.split("://", 1)[1].split(",")]


def _cluster_client(url: str) -> RedisCluster:
    hosts = [addr.rsplit(":", 1)[0] for addr in url.split("://", 1)[1].split(",")]
    nodes = [ClusterNode(h, p) for h, p in zip(hosts, _cluster_ports(url), strict=True)]
    return RedisCluster(startup_nodes=nodes, socket_timeout=5)


def _replicas(client: RedisCluster) -> dict[int, int]:
    """Port of each live replica -> port of its master, as the cluster reports them."""
    nodes = client.cluster_nodes()
    port_of = {info["node_id"]: int(addr.rsplit(":", 1)[1]) for addr, info in nodes.items()}
    return {
        int(addr.rsplit(":", 1)[1]): port_of[info["master_id"]]
        for addr, info in nodes.items()
        if "slave" in info["flags"].split(",") and "fail" not in info["flags"]
    }


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _run_script(script: str, **env: str) -> dict[str, Any]:
    """Run `script` in a fresh interpreter (its own servers) and return the JSON it prints last."""
    child_env = {k: v for k, v in os.environ.items() if k not in servers.ENV_VARS.values()}
    child_env.update(env)
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=ROOT,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_postgres_answers_and_is_shared() -> None:
    url = servers.postgres_url()
    assert servers.postgres_url() == url
    with psycopg.connect(url, connect_timeout=5) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        if _ours("postgres"):
            assert url.startswith("postgresql://postgres@127.0.0.1:")
            assert conn.execute("SHOW fsync").fetchone() == ("off",)
            assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)


def test_pgbouncer_pools_per_transaction() -> None:
    url = servers.pgbouncer_url()
    assert url != servers.postgres_url()
    opts: dict[str, Any] = {"prepare_threshold": None, "autocommit": True, "connect_timeout": 5}
    with psycopg.connect(url, **opts) as first, psycopg.connect(url, **opts) as second:
        pid_first = first.execute("SELECT pg_backend_pid()").fetchone()
        # Transaction pooling: the server connection `first` just released serves `second`.
        assert second.execute("SELECT pg_backend_pid()").fetchone() == pid_first
        with first.transaction():
            pinned = first.execute("SELECT pg_backend_pid()").fetchone()
            # ... but an open transaction keeps its server connection to itself.
            assert second.execute("SELECT pg_backend_pid()").fetchone() != pinned
        row = first.execute("SELECT current_setting('port')::int").fetchone()
    if _ours("pgbouncer") and _ours("postgres"):
        assert row == (urlsplit(servers.postgres_url()).port,)


def test_redis_answers() -> None:
    url = servers.redis_url()
    client = Redis.from_url(url, socket_timeout=5)
    try:
        assert client.ping() is True
        assert client.set("test_servers:key", "value") is True
        assert client.get("test_servers:key") == b"value"
        if _ours("redis"):
            assert url.startswith("redis://127.0.0.1:")
            assert url.endswith("/0")
            assert client.config_get("save") == {"save": ""}
    finally:
        client.delete("test_servers:key")
        client.close()


@pytest.mark.slow
def test_redis_cluster_has_three_masters_with_replicas() -> None:
    url = servers.redis_cluster_url()
    assert url.startswith("redis+cluster://")
    ports = _cluster_ports(url)
    assert len(ports) == 3
    client = _cluster_client(url)
    try:
        assert client.mset({"{servers-test}:a": "1", "{servers-test}:b": "2"}) is True
        assert client.mget("{servers-test}:a", "{servers-test}:b") == [b"1", b"2"]
        owners = {client.get_node_from_key(f"{{tag-{i}}}:k").port for i in range(60)}
        assert owners == set(ports)
        replicas = _replicas(client)
        assert len(replicas) == 3
        assert set(replicas.values()) == set(ports)  # one replica per master
    finally:
        client.delete("{servers-test}:a", "{servers-test}:b")
        client.close()


@pytest.mark.slow
def test_redis_cluster_over_tls_takes_tls_only() -> None:
    url = servers.redis_cluster_url(tls=True)
    if not _ours("redis_cluster_tls"):
        with pytest.raises(ServerUnavailable, match="CHECKPOINTERS_TEST_REDIS_CLUSTER_TLS_URL"):
            servers.redis_cluster(tls=True)
        return
    cluster = servers.redis_cluster(tls=True)
    files = cluster.certificates
    assert files is not None and url.endswith(f"?ssl_ca_certs={files.ca}")
    context = client_context(files)
    for node in cluster.nodes:
        with pytest.raises((OSError, RespError)):  # a plain connection is closed
            command(node.port, "PING")
        assert command(node.port, "PING", tls=context) == "PONG"
        assert command(node.port, "CONFIG", "GET", "tls-cluster", tls=context) == [
            "tls-cluster",
            "yes",
        ]
    hosts = url.split("://", 1)[1].split("?", 1)[0]
    nodes = [ClusterNode("127.0.0.1", int(a.rsplit(":", 1)[1])) for a in hosts.split(",")]
    client = RedisCluster(startup_nodes=nodes, ssl=True, ssl_ca_certs=str(files.ca))
    try:
        assert client.set("{servers-tls}:k", "v") is True
        assert len(_replicas(client)) == 3  # replicas in sync over TLS (their link is up)
        for port in _replicas(client):
            state = command(port, "INFO", "replication", tls=context)
            assert "master_link_status:up" in str(state)
        client.delete("{servers-tls}:k")
    finally:
        client.close()
    external_cluster_ok(url, 5)  # the wait of an env URL reads the same query


@pytest.mark.slow
def test_killed_cluster_master_fails_over_keeping_replicated_writes() -> None:
    if not _ours("redis_cluster"):
        with pytest.raises(ServerUnavailable, match="CHECKPOINTERS_TEST_REDIS_CLUSTER_URL"):
            servers.kill_redis_cluster_master()
        return
    key = "{failover-test}:k"
    client = _cluster_client(servers.redis_cluster_url())
    try:
        client.set(key, "before")
        node = client.get_node_from_key(key)
        # Replication is asynchronous: make sure the replica has the write before the crash.
        assert client.execute_command("WAIT", 1, 5000, target_nodes=node) == 1
    finally:
        client.close()
    started = time.monotonic()
    killed = servers.kill_redis_cluster_master(node.port)
    assert killed == node.port
    servers.wait_redis_cluster_ok(30)
    assert time.monotonic() - started < 15  # node timeout 1 s: measured 2.3-2.5 s
    url = servers.redis_cluster_url()
    assert killed not in _cluster_ports(url)
    assert len(_cluster_ports(url)) == 3
    client = _cluster_client(url)
    try:
        assert client.get(key) == b"before"
        assert client.set(key, "after") is True
        servers.wait_redis_cluster_ok(30, revive=True)
        assert killed in _replicas(client)  # back, as a replica of its successor
        assert client.get(key) == b"after"
    finally:
        client.delete(key)
        client.close()
    with pytest.raises(ValueError, match="not a master"):
        servers.kill_redis_cluster_master(killed)


@pytest.mark.slow
def test_redis_sentinel_set_fails_over_and_comes_back_whole() -> None:
    url = servers.redis_sentinel_url()
    assert url.startswith("redis+sentinel://") and url.endswith("/checkpointers")
    if not _ours("redis_sentinel"):
        with pytest.raises(ServerUnavailable, match="CHECKPOINTERS_TEST_REDIS_SENTINEL_URL"):
            servers.redis_sentinel()
        return
    sentinel = servers.redis_sentinel()
    assert len(sentinel.sentinel_ports) == 3 and len(sentinel.data) == 3
    master = Redis(port=sentinel.master_port(), socket_timeout=5)
    try:
        replication = master.info("replication")
        assert replication["role"] == "master" and replication["connected_slaves"] == 2
        assert master.config_get("min-replicas-to-write") == {"min-replicas-to-write": "1"}
        master.set("test_servers:sentinel", "before")
        assert master.execute_command("WAIT", 2, 5000) == 2
    finally:
        master.close()
    started = time.monotonic()
    old, new = sentinel.failover()
    assert old != new and sentinel.master_port() == new
    assert time.monotonic() - started < 15  # measured 1.1-1.3 s
    moved = Redis(port=new, socket_timeout=5)
    try:
        assert moved.get("test_servers:sentinel") == b"before"
        sentinel.wait_whole(60)  # the old master demoted, a replica of the new one
        assert Redis(port=old, socket_timeout=5).info("replication")["role"] == "slave"
        killed = sentinel.kill_master()
        assert killed == new
        servers.redis_sentinel()  # revives the killed node and waits until all is whole
        # The killed node came back as a replica, not as an empty master that the Sentinels
        # could name: the key written before the failovers is on the master named now. (Not
        # `master_port() != killed`: on a loaded machine a Sentinel that waits 1 s for a
        # PING may fail the set over once more, back to the revived node, in sync by then;
        # a fresh-clone CI run met that while other test processes ran beside it.)
        with Redis(port=sentinel.master_port(), socket_timeout=5) as current:
            assert current.get("test_servers:sentinel") == b"before"
            assert current.info("replication")["connected_slaves"] == 2
        assert killed in {node.port for node in sentinel.data}
        assert all(node.proc.alive() for node in sentinel.data)
        assert len(set(servers.owned_pids()) & {p.pid for p in sentinel.procs()}) == 6
    finally:
        with Redis(port=sentinel.master_port(), socket_timeout=5) as client:
            client.delete("test_servers:sentinel")
        moved.close()


def test_env_urls_win_and_start_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    before = servers.owned_pids()
    wanted = {
        "CHECKPOINTERS_TEST_POSTGRES_URL": "postgresql://u@db.invalid:5432/x",
        "CHECKPOINTERS_TEST_POSTGRES_TLS_URL": "postgresql://u@tls.invalid/x?sslmode=require",
        "CHECKPOINTERS_TEST_PGBOUNCER_URL": "postgresql://u@bouncer.invalid:6432/x",
        "CHECKPOINTERS_TEST_REDIS_URL": "redis://cache.invalid:6379/3",
        "CHECKPOINTERS_TEST_REDIS_CLUSTER_URL": "redis+cluster://a.invalid:7000,b.invalid:7001",
        "CHECKPOINTERS_TEST_REDIS_CLUSTER_TLS_URL": "redis+cluster://c.invalid:7000?ssl=true",
        "CHECKPOINTERS_TEST_REDIS_SENTINEL_URL": "redis+sentinel://s.invalid:26379/svc",
        "CHECKPOINTERS_TEST_VALKEY_SENTINEL_URL": "redis+sentinel://v.invalid:26379/svc",
        "CHECKPOINTERS_TEST_REDIS_TLS_URL": "rediss://tls.invalid:6380/0",
        "CHECKPOINTERS_TEST_REDIS_SENTINEL_TLS_URL": "redis+sentinel://t.invalid:1/s?ssl=true",
    }
    for var, value in wanted.items():
        monkeypatch.setenv(var, value)
    for durable in (False, True):
        assert servers.postgres_url(durable=durable) == wanted["CHECKPOINTERS_TEST_POSTGRES_URL"]
        assert servers.pgbouncer_url(durable=durable) == wanted["CHECKPOINTERS_TEST_PGBOUNCER_URL"]
        assert (
            servers.postgres_tls_url(durable=durable)
            == wanted["CHECKPOINTERS_TEST_POSTGRES_TLS_URL"]
        )
        assert servers.redis_url(durable=durable) == wanted["CHECKPOINTERS_TEST_REDIS_URL"]
        assert (
            servers.redis_cluster_url(durable=durable)
            == wanted["CHECKPOINTERS_TEST_REDIS_CLUSTER_URL"]
        )
        assert (
            servers.redis_cluster_url(durable=durable, tls=True)
            == wanted["CHECKPOINTERS_TEST_REDIS_CLUSTER_TLS_URL"]
        )
        assert (
            servers.redis_sentinel_url(durable=durable)
            == wanted["CHECKPOINTERS_TEST_REDIS_SENTINEL_URL"]
        )
        assert (
            servers.redis_sentinel_url(durable=durable, flavor="valkey")
            == wanted["CHECKPOINTERS_TEST_VALKEY_SENTINEL_URL"]
        )
        assert servers.redis_tls_url(durable=durable) == wanted["CHECKPOINTERS_TEST_REDIS_TLS_URL"]
        assert (
            servers.redis_sentinel_url(durable=durable, tls=True)
            == wanted["CHECKPOINTERS_TEST_REDIS_SENTINEL_TLS_URL"]
        )
    assert servers.owned_pids() == before
    with pytest.raises(ServerUnavailable, match="CHECKPOINTERS_TEST_POSTGRES_URL"):
        servers.restart_postgres()
    with pytest.raises(ServerUnavailable, match="CHECKPOINTERS_TEST_POSTGRES_TLS_URL"):
        servers.postgres_tls()
    with pytest.raises(ServerUnavailable, match="CHECKPOINTERS_TEST_REDIS_CLUSTER_URL"):
        servers.kill_redis_cluster_master()
    with pytest.raises(ServerUnavailable, match="CHECKPOINTERS_TEST_REDIS_CLUSTER_TLS_URL"):
        servers.kill_redis_cluster_master(tls=True)
    with pytest.raises(ServerUnavailable, match="CHECKPOINTERS_TEST_REDIS_CLUSTER_TLS_URL"):
        servers.redis_cluster(tls=True)
    with pytest.raises(ServerUnavailable, match="CHECKPOINTERS_TEST_REDIS_SENTINEL_URL"):
        servers.redis_sentinel()
    with pytest.raises(ServerUnavailable, match="CHECKPOINTERS_TEST_VALKEY_SENTINEL_URL"):
        servers.redis_sentinel(flavor="valkey")
    with pytest.raises(ServerUnavailable, match="CHECKPOINTERS_TEST_REDIS_TLS_URL"):
        servers.redis_tls()
    # An empty variable counts as unset.
    monkeypatch.setenv("CHECKPOINTERS_TEST_REDIS_URL", "")
    assert servers.redis_url() != wanted["CHECKPOINTERS_TEST_REDIS_URL"]
    assert servers.redis_url().startswith("redis://")


def test_owned_servers_are_children_of_this_process() -> None:
    if not _ours("redis"):
        pytest.skip("CHECKPOINTERS_TEST_REDIS_URL names a server this process does not own")
    servers.redis_url()
    pids = servers.owned_pids()
    assert pids
    for pid in pids:
        stat = Path(f"/proc/{pid}/stat").read_text()
        assert int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid()


@pytest.mark.slow
def test_restart_durable_and_stop_all_in_a_fresh_process() -> None:
    result = _run_script(
        """
        import json, psycopg
        from checkpoint_base.testing import _containers, servers
        url = servers.postgres_url()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (v text)")
            conn.execute("INSERT INTO kept VALUES ('committed before restart')")
        pid_before = servers.owned_pids()[0]
        servers.restart_postgres()
        with psycopg.connect(url) as conn:
            kept = conn.execute("SELECT v FROM kept").fetchall()
        durable = servers.postgres_url(durable=True)
        with psycopg.connect(durable) as conn:
            fsync = conn.execute("SHOW fsync").fetchone()[0]
        servers.redis_url()
        pids = servers.owned_pids()
        servers.stop_all()
        print(json.dumps({"url": url, "durable": durable, "kept": kept, "fsync": fsync,
                          "pid_before": pid_before, "pids": pids, "after": servers.owned_pids()}))
        """
    )
    assert result["kept"] == [["committed before restart"]]
    assert result["pid_before"] not in result["pids"]  # restarted: a new postmaster
    assert result["fsync"] == "on"
    assert result["durable"] != result["url"]
    assert len(result["pids"]) == 3  # test postgres, durable postgres, redis
    assert result["after"] == []
    assert all(_gone(pid) for pid in result["pids"])
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(result["url"], connect_timeout=2)


@pytest.mark.slow
def test_exit_stops_only_own_servers_and_explains_what_is_missing() -> None:
    upstream = servers.postgres_url()  # owned by this process: the child must leave it running
    result = _run_script(
        """
        import json, time, psycopg
        from checkpoint_base.testing import servers, _redis
        bouncer = servers.pgbouncer_url()
        with psycopg.connect(bouncer, prepare_threshold=None) as conn:
            one = conn.execute("SELECT 1").fetchone()[0]
        servers.redis_url()
        pids = servers.owned_pids()
        _redis.redis_binary = lambda: None  # as on a machine without redis-server
        errors, took = [], []
        for _ in range(2):
            started = time.monotonic()
            try:
                servers.redis_url(durable=True)
            except servers.ServerUnavailable as exc:
                errors.append(str(exc))
            took.append(time.monotonic() - started)
        print(json.dumps({"one": one, "pids": pids, "errors": errors, "took": took}))
        """,  # no stop_all(): the exit hook must stop what this process started
        CHECKPOINTERS_TEST_POSTGRES_URL=upstream,
    )
    assert result["one"] == 1
    assert len(result["pids"]) == 2  # pgbouncer and redis, not postgres
    assert all(_gone(pid) for pid in result["pids"])
    with psycopg.connect(upstream, connect_timeout=5) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    first, again = result["errors"]
    assert first == again
    assert result["took"][1] < 0.5  # the failure is remembered, not retried in every test
    for hint in ("CHECKPOINTERS_TEST_REDIS_URL", "redis-server", "install-system-deps.sh"):
        assert hint in first
    assert "testcontainers" in first


@pytest.mark.parametrize(("status", "answers"), [(b"200 OK", True), (b"500 Server Error", False)])
def test_docker_probe_reads_the_engine_ping(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, status: bytes, answers: bool
) -> None:
    path = tmp_path / "docker.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)

    def serve_one() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(1024)
            conn.sendall(b"HTTP/1.1 " + status + b"\r\nContent-Length: 2\r\n\r\nOK")

    thread = threading.Thread(target=serve_one, daemon=True)
    thread.start()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
    try:
        assert _containers._docker_answers() is answers
    finally:
        thread.join(5)
        listener.close()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'absent.sock'}")
    started = time.monotonic()
    assert _containers._docker_answers() is False
    assert time.monotonic() - started < 0.5
