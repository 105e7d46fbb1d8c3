"""Servers in Docker through testcontainers, used only if it is installed and an engine answers."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import socket
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from checkpoint_base.testing._procs import ServerUnavailable, pick_port, port_open

__all__ = ["PostgresContainerServer", "RedisContainerServer", "unusable_reason"]

_PG_TEST_COMMAND = "postgres -c fsync=off -c synchronous_commit=off -c full_page_writes=off"


def _docker_answers() -> bool:
    # A raw GET /_ping: 2-3 ms when no engine is there, at most 1 s against a hung one.
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        if host.startswith("unix://"):
            path = host[len("unix://") :]
            if not os.path.exists(path):
                return False
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(1)
            sock.connect(path)
        elif host.startswith("tcp://"):
            parts = urlsplit(host)
            sock = socket.create_connection((parts.hostname or "", parts.port or 2375), timeout=1)
        else:
            return False
        with sock:
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            status_line = sock.recv(64).split(b"\r\n", 1)[0]
    except OSError:
        return False
    return status_line.startswith(b"HTTP/1.") and b" 200 " in status_line


def unusable_reason() -> str | None:
    """Why testcontainers cannot be used here, or None if it can."""
    if importlib.util.find_spec("testcontainers") is None:
        return "not installed (optional: pip install testcontainers)"
    if not _docker_answers():
        return "installed, but no Docker engine answers at DOCKER_HOST or /var/run/docker.sock"
    return None


def _pg_answers(url: str) -> bool:
    try:
        import psycopg
    except ImportError:
        parts = urlsplit(url)
        return port_open(parts.port or 5432, parts.hostname or "127.0.0.1")
    try:
        with psycopg.connect(url, connect_timeout=2):
            return True
    except psycopg.Error:
        return False


def _module_class(module: str, name: str) -> Any:
    # testcontainers >= 4.14 moved the modules under `community` and deprecated the old path.
    for prefix in ("testcontainers.community.", "testcontainers."):
        try:
            return getattr(importlib.import_module(prefix + module), name)
        except ImportError:
            continue
    raise ImportError(f"testcontainers has no {module} module")


def _started(what: str, build: Callable[[], Any]) -> Any:
    """Build and start a container; any failure becomes ServerUnavailable (and is cleaned up)."""
    container = None
    try:
        container = build()  # the constructor already talks to the engine
        container.start()
    except Exception as exc:  # ImportError, docker.errors.*, wait timeouts: no common base
        if container is not None:
            with contextlib.suppress(Exception):
                container.stop()
        first_line = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
        raise ServerUnavailable(f"could not start {what}: {first_line}") from exc
    return container


class PostgresContainerServer:
    """PostgreSQL 15 in a container, published on a fixed host port so a restart keeps the URL."""

    def __init__(self, *, durable: bool) -> None:
        self.durable = durable
        self.url = ""
        self._container: Any = None

    def start(self) -> None:
        """Start the container; testcontainers waits until PostgreSQL answers.

        Raises:
            ServerUnavailable: the module or the engine failed.
        """

        def build() -> Any:
            container = _module_class("postgres", "PostgresContainer")("postgres:15", driver=None)
            container.with_bind_ports(5432, pick_port())
            if not self.durable:
                container.with_command(_PG_TEST_COMMAND)
            return container

        self._container = _started("postgres", build)
        self.url = self._container.get_connection_url()

    def restart(self) -> None:
        """Restart the container (the image stops PostgreSQL with a fast shutdown).

        Raises:
            ServerUnavailable: it did not answer again within 60 s.
        """
        self._container.get_wrapped_container().restart(timeout=30)
        deadline = time.monotonic() + 60
        while not _pg_answers(self.url):
            if time.monotonic() > deadline:
                raise ServerUnavailable("postgres container did not answer after restart")
            time.sleep(0.1)

    def stop(self) -> None:
        """Remove the container."""
        if self._container is not None:
            self._container.stop()


class RedisContainerServer:
    """Redis 7 in a container."""

    def __init__(self, *, durable: bool) -> None:
        self.durable = durable
        self.url = ""
        self._container: Any = None

    def start(self) -> None:
        """Start the container; testcontainers waits until Redis answers PING.

        Raises:
            ServerUnavailable: the module or the engine failed.
        """

        def build() -> Any:
            container = _module_class("redis", "RedisContainer")("redis:7")
            if not self.durable:
                container.with_command("redis-server --save '' --appendonly no")
            return container

        self._container = container = _started("redis", build)
        host = container.get_container_host_ip()
        self.url = f"redis://{host}:{container.get_exposed_port(6379)}/0"

    def stop(self) -> None:
        """Remove the container."""
        if self._container is not None:
            self._container.stop()
