"""Whether a redis-py client speaks TLS, and presents a certificate, and what a connection the
server closed then means: the hint of `_errors.translate`'s error."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis.exceptions as rx
from redis.asyncio.connection import SSLConnection as AsyncSSLConnection
from redis.connection import SSLConnection

__all__ = ["ClientTls", "client_tls", "closed_hint", "options_tls"]

# What a plain connection to a server that takes TLS only meets (redis-py's words; the last
# two, its asyncio cluster client's, the second of them seen on a loaded machine); a TLS
# connection without a client certificate meets them too, when the server asks for one.
_PLAIN_REFUSED = (
    "Connection reset by peer",
    "Connection closed by server",
    "Connection closed by the server before write",
    "while writing to socket. Connection lost",
)
# What a TLS connection meets when the server closed it mid-handshake or right after it.
_TLS_CLOSED = "EOF occurred in violation of protocol"


@dataclass(frozen=True, slots=True)
class ClientTls:
    """The TLS settings of a client's connections."""

    on: bool  # the connections speak TLS
    certificate: bool  # ... and present a client certificate (ssl_certfile=)


def options_tls(options: Mapping[str, Any], connection_class: Any = None) -> ClientTls:
    """The settings that connection options (a pool's, or a cluster client's) give."""
    on = bool(options.get("ssl")) or (
        isinstance(connection_class, type)
        and issubclass(connection_class, (SSLConnection, AsyncSSLConnection))
    )
    return ClientTls(on=on, certificate=on and bool(options.get("ssl_certfile")))


def client_tls(client: Any) -> ClientTls | None:
    """The settings of `client`'s connections, or None for a client of another make."""
    pool = getattr(client, "connection_pool", None)  # one server, or Sentinel's master
    if pool is not None:
        return options_tls(
            getattr(pool, "connection_kwargs", {}), getattr(pool, "connection_class", None)
        )
    options = getattr(getattr(client, "nodes_manager", None), "connection_kwargs", None)
    if not isinstance(options, Mapping):
        return None
    return options_tls(options, options.get("connection_class"))  # either cluster client


def closed_hint(exc: BaseException, tls: ClientTls | None) -> str:
    """What to check when the server closed the connection, or "" (another error)."""
    # a cluster client that reached no node says why in a RedisClusterException
    if not isinstance(exc, (rx.ConnectionError, rx.RedisClusterException)):
        return ""
    plain = any(m in str(exc) for m in _PLAIN_REFUSED)
    if not plain and _TLS_CLOSED not in str(exc):
        return ""
    speaks_tls = tls.on if tls is not None else not plain  # unknown: as the words tell
    if not speaks_tls:
        return (
            ". A server that takes TLS only closes plain connections so: rediss://, or "
            "ssl=true in the query of a redis+cluster:// or redis+sentinel:// URL "
            "(rediss+cluster://, rediss+sentinel://)"
        )
    if tls is not None and tls.certificate:
        return ""
    # TLS 1.3: the client's handshake ends before the server checks its certificate; the
    # refusal comes as an alert, or, to a write, as the connection closed: an SSLEOFError
    # (_TLS_CLOSED) on Python 3.11, the socket's own error (Connection reset by peer) on
    # 3.13 (CPython gh-115627), "Connection closed by the server" in asyncio.
    return (
        ". A TLS server that asks for a client certificate closes a connection without one "
        "so: give ssl_certfile= and ssl_keyfile= in the URL"
    )
