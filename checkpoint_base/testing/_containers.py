"""Servers in Docker through testcontainers, used only if it is installed and an engine answers."""

from __future__ import annotations

import importlib.util
import os
import socket
import time
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
        return "testcontainers is not installed (optional: pip install testcontainers)"
    if not _docker_answers():
        return "no Docker engine answers (DOCKER_HOST or /var/run/docker.sock)"
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


class PostgresContainerServer:
    """PostgreSQL 15 in a container, published on a fixed host port so a restart keeps the URL."""

    def __init__(self, *, durable: bool) -> None:
        self.durable = durable
        self.url = ""
        self._container: Any = None

    def start(self) -> None:
        """Start the container and wait for it (testcontainers waits for readiness)."""
        from testcontainers.postgres import PostgresContainer

        container = PostgresContainer("postgres:15", driver=None)
        container.with_bind_ports(5432, pick_port())
        if not self.durable:
            container.with_command(_PG_TEST_COMMAND)
        try:
            container.start()
        except Exception as exc:  # docker errors have no common base worth importing
            raise ServerUnavailable(f"testcontainers could not start postgres: {exc}") from exc
        self._container = container
        self.url = container.get_connection_url()

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
        """Start the container (testcontainers waits for PING)."""
        from testcontainers.redis import RedisContainer

        container = RedisContainer("redis:7")
        if not self.durable:
            container.with_command("redis-server --save '' --appendonly no")
        try:
            container.start()
        except Exception as exc:  # docker errors have no common base worth importing
            raise ServerUnavailable(f"testcontainers could not start redis: {exc}") from exc
        self._container = container
        host = container.get_container_host_ip()
        self.url = f"redis://{host}:{container.get_exposed_port(6379)}/0"

    def stop(self) -> None:
        """Remove the container."""
        if self._container is not None:
            self._container.stop()
