"""Whether a redis-py client speaks TLS, and presents a certificate: what an error's hint
needs to know of it (`_errors.translate`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from redis.asyncio.connection import SSLConnection as AsyncSSLConnection
from redis.connection import SSLConnection

__all__ = ["ClientTls", "client_tls", "options_tls"]


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
