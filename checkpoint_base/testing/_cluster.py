"""A Redis Cluster of three masters and three replicas on loopback, for tests."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from checkpoint_base.testing._procs import (
    Proc,
    ServerExited,
    ServerUnavailable,
    log_tail,
    make_run_dir,
    remove_dir,
    spawn,
    start_listening,
    stop_procs,
    wait_until,
)
from checkpoint_base.testing._redis import (
    RespError,
    command,
    info,
    node_argv,
    pong,
    redis_binary,
)

__all__ = ["LocalRedisCluster", "external_cluster_ok"]

# A killed master is replaced after about this long: with 1000 ms, writes succeed again
# 2.3-2.5 s after the kill (tests/test_servers.py measures it on every run).
_NODE_TIMEOUT_MS = 1000
_SLOTS = 16384


@dataclass(slots=True)
class _Node:
    port: int
    bus_port: int
    argv: list[str]
    proc: Proc
    node_id: str = ""


@dataclass(frozen=True, slots=True)
class _View:
    """One line of CLUSTER NODES."""

    node_id: str
    port: int
    flags: frozenset[str]
    master_id: str
    has_slots: bool


def _views(port: int) -> list[_View]:
    views = []
    for line in str(command(port, "CLUSTER", "NODES")).splitlines():
        fields = line.split()
        addr = fields[1].split("@", 1)[0]
        views.append(
            _View(
                node_id=fields[0],
                port=int(addr.rsplit(":", 1)[1] or 0),
                flags=frozenset(fields[2].split(",")),
                master_id=fields[3],
                has_slots=len(fields) > 8,
            )
        )
    return views


def _state_ok(port: int) -> bool:
    state = info(port, "cluster")
    return state.get("cluster_state") == "ok" and state.get("cluster_slots_ok") == str(_SLOTS)


@dataclass
class LocalRedisCluster:
    """Three masters and three replicas on loopback, formed with CLUSTER MEET/ADDSLOTSRANGE."""

    durable: bool
    nodes: list[_Node] = field(default_factory=list)
    run_dir: Path | None = None
    dead: set[int] = field(default_factory=set)

    def start(self) -> None:
        """Start six nodes, assign slots, attach replicas and wait until the cluster is whole.

        Raises:
            ServerUnavailable: binary missing, a node did not start, or the cluster did not form.
        """
        binary = redis_binary()
        if binary is None:
            raise ServerUnavailable("redis-server not found on PATH")
        self.run_dir = make_run_dir("redis-cluster", None)
        for index in range(6):
            node_dir = self.run_dir / f"node{index}"
            node_dir.mkdir()
            build = functools.partial(self._argv, binary, node_dir)
            proc, ports = start_listening(
                f"redis cluster node {index}",
                build,
                log=node_dir / "redis.log",
                user=None,
                ready=lambda ports: pong(ports[0]),
                nports=2,
                timeout=15,
            )
            self.nodes.append(_Node(ports[0], ports[1], build(ports), proc))
        self._form()

    def _argv(self, binary: str, node_dir: Path, ports: list[int]) -> list[str]:
        return [
            *node_argv(binary, ports[0], node_dir, self.durable),
            "--cluster-enabled", "yes",
            "--cluster-config-file", str(node_dir / "nodes.conf"),
            "--cluster-node-timeout", str(_NODE_TIMEOUT_MS),
            "--cluster-port", str(ports[1]),  # a bus port checked free, not blindly port+10000
            "--repl-diskless-sync", "yes",
            "--repl-diskless-sync-delay", "0",  # the default 5 s would delay every replica sync
        ]  # fmt: skip

    def _form(self) -> None:
        # Measured 2.1 s from the first node's start to a whole cluster; the floor is 2 s, as a
        # master does not report ok until 2 s after it started (CLUSTER_WRITABLE_DELAY).
        masters, replicas = self.nodes[:3], self.nodes[3:]
        for node in self.nodes:
            node.node_id = str(command(node.port, "CLUSTER", "MYID"))
        for index, node in enumerate(masters):
            low, high = index * _SLOTS // 3, (index + 1) * _SLOTS // 3 - 1
            command(node.port, "CLUSTER", "ADDSLOTSRANGE", low, high)
            # Distinct epochs up front spare the nodes a round of collision resolution.
            command(node.port, "CLUSTER", "SET-CONFIG-EPOCH", index + 1)
        first = self.nodes[0]
        for node in self.nodes[1:]:
            command(first.port, "CLUSTER", "MEET", "127.0.0.1", node.port, node.bus_port)
        ids = {node.node_id for node in self.nodes}

        def all_met() -> bool:
            for node in self.nodes:
                views = _views(node.port)
                if {v.node_id for v in views} != ids or any("handshake" in v.flags for v in views):
                    return False
            return True

        self._wait(all_met, 20, "redis cluster nodes meeting")
        for replica, master in zip(replicas, masters, strict=True):
            command(replica.port, "CLUSTER", "REPLICATE", master.node_id)
        self._wait(self._whole, 30, "redis cluster with replicas in sync")

    def _wait(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        def ready() -> bool:
            try:
                return check()
            except (OSError, RespError, ValueError, IndexError):
                return False

        try:
            wait_until(ready, None, timeout, what)
        except ServerUnavailable as exc:
            logs = "\n".join(
                f"node {n.port}: {log_tail(n.proc.log, limit=300)}" for n in self.nodes
            )
            raise ServerUnavailable(f"{exc}; node logs:\n{logs}") from None

    def _whole(self) -> bool:
        # Every node: state ok, 3 live masters owning slots, 3 live replicas, replica links up.
        for node in self.nodes:
            views = _views(node.port)
            masters = {v.node_id for v in views if "master" in v.flags and v.has_slots}
            replicas = [v for v in views if "slave" in v.flags and v.master_id in masters]
            if len(masters) != 3 or len(replicas) != 3 or not _state_ok(node.port):
                return False
            if any("fail" in v.flags or "fail?" in v.flags for v in views):
                return False
            role = info(node.port, "replication")
            if role.get("role") == "slave" and role.get("master_link_status") != "up":
                return False
        return True

    def live(self) -> list[_Node]:
        """Nodes whose process is running."""
        return [node for node in self.nodes if node.proc.alive()]

    def master_ports(self) -> list[int]:
        """Ports of the masters that serve slots now, as a live node sees them."""
        for node in self.live():
            try:
                views = _views(node.port)
            except (OSError, RespError):
                continue
            alive = {n.port for n in self.live()}
            return sorted(
                v.port
                for v in views
                if "master" in v.flags and v.has_slots and "fail" not in v.flags and v.port in alive
            )
        raise ServerUnavailable("no redis cluster node answers")

    @property
    def url(self) -> str:
        """redis+cluster:// URL listing the current masters."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.master_ports())

    def kill_master(self, port: int | None) -> int:
        """Revive nodes killed earlier, then SIGKILL one master that has a replica in sync.

        Raises:
            ValueError: `port` is not a master of this cluster.
        """
        self.revive()
        masters = self.master_ports()
        if port is None:
            port = masters[0]
        elif port not in masters:
            raise ValueError(f"port {port} is not a master of the test cluster ({masters})")
        node = next(n for n in self.nodes if n.port == port)
        node.proc.popen.kill()
        node.proc.popen.wait(5)
        self.dead.add(port)
        return port

    def revive(self, timeout: float = 30.0) -> None:
        """Restart nodes we killed and wait until they are replicas in sync again.

        Raises:
            ServerUnavailable: a node did not come back or the cluster did not become whole.
        """
        if not self.dead:
            return
        for node in self.nodes:
            if node.port in self.dead:
                offset = node.proc.log.stat().st_size
                node.proc = spawn(node.proc.name, node.argv, log=node.proc.log, user=None)
                try:
                    wait_until(functools.partial(pong, node.port), node.proc, 15, node.proc.name)
                except (ServerExited, ServerUnavailable):
                    raise ServerUnavailable(
                        f"cluster node {node.port} did not come back:\n"
                        f"{log_tail(node.proc.log, offset)}"
                    ) from None
        self.dead.clear()
        # It rejoins as a replica of the master promoted in its place, then resyncs.
        self._wait(self._whole, timeout, "redis cluster after reviving killed nodes")

    def wait_ok(self, timeout: float, *, revive: bool = False) -> None:
        """Wait until every live node says ok and no slot is served by a node we killed.

        Raises:
            TimeoutError: the cluster did not recover in time.
            ServerUnavailable: `revive` and a killed node could not be brought back.
        """
        deadline = time.monotonic() + timeout
        while not self._recovered():
            if time.monotonic() > deadline:
                raise TimeoutError(f"redis cluster not ok after {timeout} s (killed: {self.dead})")
            time.sleep(0.05)
        if revive:
            self.revive(max(deadline - time.monotonic(), 5.0))

    def _recovered(self) -> bool:
        alive = {n.port for n in self.live()}
        try:
            for port in alive:
                if not _state_ok(port):
                    return False
                owners = {v.port for v in _views(port) if "master" in v.flags and v.has_slots}
                if not owners <= alive:
                    return False
        except (OSError, RespError):
            return False
        return True

    def stop(self) -> None:
        """Stop every node and delete their directories."""
        stop_procs([node.proc for node in self.nodes])
        if self.run_dir is not None:
            remove_dir(self.run_dir)


def external_cluster_ok(url: str, timeout: float) -> None:
    """Wait until each node listed in a redis+cluster:// URL reports cluster_state:ok.

    Raises:
        TimeoutError: some node did not report ok in time.
    """
    rest = url.split("://", 1)[1].split("/", 1)[0]
    password = None
    if "@" in rest:
        auth, rest = rest.rsplit("@", 1)
        password = auth.split(":", 1)[-1] or None
    addrs = [(h, int(p)) for h, p in (a.rsplit(":", 1) for a in rest.split(","))]
    deadline = time.monotonic() + timeout
    while True:
        try:
            if all(
                info(port, "cluster", host, password).get("cluster_state") == "ok"
                for host, port in addrs
            ):
                return
        except (OSError, RespError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"redis cluster at {url} not ok after {timeout} s")
        time.sleep(0.05)
