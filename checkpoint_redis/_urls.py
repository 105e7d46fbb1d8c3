"""Clients from URLs: `redis://`, `rediss://` (TLS) and `redis+cluster://host:port,host:port`.

Timeouts and retries are set on purpose: redis-py's own retries (3 by default, with back-off)
turned an unreachable server into a 15 s hang; here redis-py does not retry and the executor
retries within `RetryPolicy.timeout`. Options of the saver itself may ride in the query
string (`?key_prefix=app&ttl=3600`), so a single URL configures `connect()` and the CLI.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import redis
import redis.asyncio as aredis
from redis.asyncio.cluster import ClusterNode as AsyncClusterNode
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode as _ClusterNode
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError
from redis.retry import Retry

from checkpoint_base import ConfigError

from ._aexecutor import AsyncClient
from ._errors import translate
from ._executor import SyncClient

__all__ = ["CLIENT_DEFAULTS", "async_client", "saver_options", "sync_client"]

ClusterNode: Any = _ClusterNode  # untyped in redis-py


def _driver_info() -> dict[str, Any]:
    """`driver_info=` naming redis-py and its version as redis-py itself would.

    redis-py 8.1 (seen here; other versions with `DriverInfo` before 8.2 likely too) looks
    that version up in the installed packages' metadata (file system calls) for every
    connection it makes, so a connection made on an event loop that forbids blocking calls
    (`langgraph dev`) failed; 8.2 reads it once. Without `DriverInfo`, nothing is passed.
    """
    try:
        from redis.driver_info import DriverInfo
    except ImportError:
        return {}
    return {"driver_info": DriverInfo(lib_version=redis.__version__)}


CLIENT_DEFAULTS: dict[str, Any] = {
    "socket_connect_timeout": 2.0,
    "socket_timeout": 10.0,  # above the longest script (a prune of a very long thread)
    "protocol": 2,
    **_driver_info(),
}
_SAVER_OPTIONS: dict[str, Callable[[str], Any]] = {
    "key_prefix": str,
    "ttl": float,
    "refresh_on_read": lambda v: v.lower() in {"1", "true", "yes", "on"},
    "retry_timeout": float,
}
_TRUE = {"1", "true", "yes", "on"}


def saver_options(url: str) -> tuple[str, dict[str, Any]]:
    """Split the saver's own options out of the URL's query string.

    Raises:
        ConfigError: A value of the saver's options is malformed, or (`redis://`,
            `rediss://`) an option is neither the saver's nor one of redis-py's connection
            options, which redis-py would only refuse at the first command.
    """
    parts = urlsplit(url)
    cluster = parts.scheme.lower() == "redis+cluster"
    found: dict[str, Any] = {}
    rest = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        convert = _SAVER_OPTIONS.get(name)
        if convert is None:
            if not cluster and name not in _connection_options():
                raise ConfigError(
                    f"unknown option {name!r} in a Redis URL; the saver's: "
                    f"{', '.join(_SAVER_OPTIONS)}; or one of redis-py's connection options "
                    "(socket_timeout, health_check_interval, ssl_cert_reqs, ...)"
                )
            rest.append((name, value))
            continue
        try:
            found[name] = convert(value)
        except ValueError as exc:
            raise ConfigError(f"bad value for {name!r} in Redis URL: {value!r}") from exc
    return urlunsplit(parts._replace(query=urlencode(rest))), found


@functools.lru_cache(maxsize=1)
def _connection_options() -> frozenset[str]:
    """What redis-py takes in a URL's query: the options it parses, and the keyword arguments
    of its connection classes, to which it hands the rest (read from the installed version)."""
    from redis import connection

    names = set(getattr(connection, "URL_QUERY_ARGUMENT_PARSERS", ()))
    for cls_name in ("AbstractConnection", "Connection", "SSLConnection"):
        cls = getattr(connection, cls_name, None)
        if cls is None:
            continue
        for param in inspect.signature(cls.__init__).parameters.values():
            if param.kind not in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
                names.add(param.name)
    names.discard("self")
    return frozenset(names)


def _cluster_parts(url: str) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    kwargs: dict[str, Any] = {}
    if userinfo:
        user, _, password = userinfo.partition(":")
        kwargs["username"] = unquote(user) or None
        kwargs["password"] = unquote(password) or None
    nodes = []
    for item in hosts.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(
                f"redis+cluster URL needs host:port,host:port,...; got {item!r} in {url!r}"
            )
        nodes.append((host.strip("[]"), int(port)))
    if parts.path.strip("/") not in ("", "0"):
        raise ConfigError(f"Redis Cluster has only database 0; got path {parts.path!r}")
    for name, value in parse_qsl(parts.query):
        if name in ("ssl", "tls"):
            kwargs["ssl"] = value.lower() in _TRUE
        elif name in ("socket_timeout", "socket_connect_timeout"):
            kwargs[name] = float(value)
        elif name == "ssl_cert_reqs":
            kwargs[name] = value
        else:
            raise ConfigError(f"unknown option {name!r} in redis+cluster URL {url!r}")
    return nodes, kwargs


def sync_client(url: str) -> SyncClient:
    """A blocking client for `url` (single server or cluster)."""
    if url.lower().startswith("redis+cluster://"):
        nodes, kwargs = _cluster_parts(url)
        try:  # the blocking cluster client reads the slot map at once
            return RedisCluster(
                startup_nodes=[ClusterNode(h, p) for h, p in nodes],
                retry=Retry(NoBackoff(), 1),
                **{**CLIENT_DEFAULTS, **kwargs},
            )
        except (RedisClusterException, RedisError) as exc:
            raise translate(exc) from exc
    try:
        return redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), **CLIENT_DEFAULTS)
    except ValueError as exc:
        raise ConfigError(f"bad Redis URL {url!r}: {exc}") from exc


def async_client(url: str) -> AsyncClient:
    """An asyncio client for `url` (single server or cluster)."""
    if url.lower().startswith("redis+cluster://"):
        nodes, kwargs = _cluster_parts(url)
        return AsyncRedisCluster(
            startup_nodes=[AsyncClusterNode(h, p) for h, p in nodes],
            retry=AsyncRetry(NoBackoff(), 1),
            **{**CLIENT_DEFAULTS, **kwargs},
        )
    try:
        return aredis.Redis.from_url(url, retry=AsyncRetry(NoBackoff(), 0), **CLIENT_DEFAULTS)
    except ValueError as exc:
        raise ConfigError(f"bad Redis URL {url!r}: {exc}") from exc
