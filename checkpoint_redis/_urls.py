"""Clients from URLs: `redis://`, `rediss://` (TLS), `redis+cluster://host:port,host:port` and
`redis+sentinel://host:port,host:port/service`.

    redis+sentinel://[user:password@]host:port[,host:port...]/service[/db][?option=value...]

lists Sentinels; the path names the service they monitor (`sentinel monitor <service> ...`)
and, after it, the database. `user:password` authenticate to the master; the Sentinels' own
credentials, when they have some, ride in the query (`sentinel_username`,
`sentinel_password`); TLS options (`ssl`, `ssl_ca_certs`, ...) serve both. What a failover
does to such a client: `_sentinel.py`.

Timeouts and retries are set on purpose: redis-py's own retries (3 by default, with back-off)
turned an unreachable server into a 15 s hang; here redis-py does not retry and the executor
retries within `RetryPolicy.timeout`. Options of the saver itself may ride in the query
string (`?key_prefix=app&ttl=3600`), so a single URL configures `connect()` and the CLI.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import redis
import redis.asyncio as aredis
from redis.asyncio.cluster import ClusterNode as AsyncClusterNode
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.retry import Retry as AsyncRetry
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode as _ClusterNode
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError
from redis.retry import Retry
from redis.sentinel import Sentinel

from checkpoint_base import ConfigError
from checkpoint_base._connect import redact
from checkpoint_base._flags import url_flag
from checkpoint_base._schemes import canonical_url

from ._aexecutor import AsyncClient
from ._errors import translate
from ._executor import SyncClient
from ._tls import options_tls

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
    "refresh_on_read": lambda v: _flag(v, "refresh_on_read"),
    "retry_timeout": float,
}


class _NotTaken(ValueError):
    """An option given a word it does not take: its message says which words it takes."""


def _flag(value: str, name: str) -> bool:
    """`value` as a boolean.

    Raises:
        _NotTaken: It is none of 1/0, true/false, yes/no, on/off.
    """
    flag = url_flag(value)
    if flag is None:
        raise _NotTaken(f"{name} takes true or false (1/0, yes/no, on/off)")
    return flag


_CERT_REQS = ("none", "optional", "required")


def _cert_reqs(value: str) -> str:
    """`ssl_cert_reqs=` as redis-py takes it (in lower case); a cluster client refused
    another word only as it connected, as if no node answered.

    Raises:
        _NotTaken: It is none of `_CERT_REQS`.
    """
    if value not in _CERT_REQS:
        raise _NotTaken(f"ssl_cert_reqs takes {', '.join(_CERT_REQS)}")
    return value


def _why(exc: ValueError) -> str:
    """What a refused option's error adds: the words the option takes, when it has a list."""
    return f" ({exc})" if isinstance(exc, _NotTaken) else ""


SENTINEL_SCHEME = "redis+sentinel"
CLUSTER_SCHEME = "redis+cluster"
_CLUSTER_EXAMPLE = "redis+cluster://host:7000,host:7001"
_SENTINEL_EXAMPLE = "redis+sentinel://host:26379,host:26380/service[/db]"
# Options a redis+sentinel:// or redis+cluster:// query may carry besides the saver's, and
# their types: for the data nodes' connections (the master's, or every cluster node's), for the
# Sentinels' own, and TLS for all (a deployment that speaks TLS has its Sentinels and data
# nodes take it alike: `tls-replication yes`, `tls-cluster yes`).
_MASTER_OPTIONS: dict[str, Callable[[str], Any]] = {
    "socket_timeout": float,
    "socket_connect_timeout": float,
    "max_connections": int,
}
_SENTINEL_OPTIONS: dict[str, Callable[[str], Any]] = {
    "sentinel_username": str,
    "sentinel_password": str,
}
_TLS_OPTIONS: dict[str, Callable[[str], Any]] = {
    "ssl": lambda v: _flag(v, "ssl"),  # a typo must not turn TLS off
    "ssl_ca_certs": str,
    "ssl_certfile": str,
    "ssl_keyfile": str,
    "ssl_cert_reqs": _cert_reqs,
    "ssl_check_hostname": lambda v: _flag(v, "ssl_check_hostname"),
}
_CLUSTER_ALIASES: dict[str, Callable[[str], Any]] = {"tls": lambda v: _flag(v, "tls")}


def saver_options(url: str) -> tuple[str, dict[str, Any]]:
    """Split the saver's own options out of the URL's query string.

    Raises:
        ConfigError: A value of the saver's options is malformed, or (`redis://`,
            `rediss://`) an option is neither the saver's nor one of redis-py's connection
            options, which redis-py would only refuse at the first command.
    """
    parts = urlsplit(canonical_url(url))  # valkey:// as redis://
    # redis+cluster:// and redis+sentinel:// options are checked where their URLs are read
    cluster = parts.scheme.lower() in ("redis+cluster", SENTINEL_SCHEME)
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
                    + (
                        "; for TLS, write rediss://host:port/db (a cluster or Sentinel URL "
                        "takes ssl=true, or rediss+cluster://, rediss+sentinel://)"
                        if name in ("ssl", "tls")
                        else ""
                    )
                )
            if name == "ssl_cert_reqs" and not cluster:  # redis-py: only at the first call
                _converted(name, value, _cert_reqs)  # (`_options` checks a cluster's)
            rest.append((name, value))
            continue
        found[name] = _converted(name, value, convert)
    plain = urlunsplit(parts._replace(query=urlencode(rest)))
    if not parts.netloc:  # unix:///path.sock: urlunsplit writes unix:/path.sock
        plain = plain.replace(":", "://", 1)
    return plain, found


def _converted(name: str, value: str, convert: Callable[[str], Any]) -> Any:
    """`convert(value)`, or the ConfigError naming the option of a `redis://` URL it refused."""
    try:
        return convert(value)
    except ValueError as exc:
        raise ConfigError(f"bad value for {name!r} in Redis URL: {value!r}{_why(exc)}") from exc


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


def _nodes(url: str, usage: str) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    """The `host:port,host:port` list of a URL's network location, and the credentials
    before it (`username`, `password`).

    Raises:
        ConfigError: An item of the list is not `host:port`; the message quotes `usage`.
    """
    userinfo, _, hosts = urlsplit(url).netloc.rpartition("@")
    credentials: dict[str, Any] = {}
    if userinfo:
        user, _, password = userinfo.partition(":")
        credentials["username"] = unquote(user) or None
        credentials["password"] = unquote(password) or None
    nodes = []
    for item in hosts.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"{usage}; got {item!r} in {redact(url)!r}")
        nodes.append((host.strip("[]"), int(port)))
    return nodes, credentials


def _options(
    url: str, scheme: str, tables: tuple[dict[str, Callable[[str], Any]], ...]
) -> dict[str, Any]:
    """The options of a `scheme` URL's query (the saver's taken out before), converted by the
    first of `tables` that has them; a TLS option besides `ssl` turns `ssl` on.

    Raises:
        ConfigError: An option no table has, a value its converter refuses, or `ssl=false`
            with other TLS options.
    """
    found: dict[str, Any] = {}
    for name, value in parse_qsl(urlsplit(url).query, keep_blank_values=True):
        convert = next((table[name] for table in tables if name in table), None)
        if convert is None:
            shown = (table for table in tables if table is not _CLUSTER_ALIASES)
            known = ", ".join(name for table in shown for name in table)
            raise ConfigError(
                f"unknown option {name!r} in a {scheme} URL; the saver's options "
                f"and {known} are taken"
            )
        try:
            found[name] = convert(value)
        except ValueError as exc:
            raise ConfigError(
                f"bad value for {name!r} in a {scheme} URL: {value!r}{_why(exc)}"
            ) from exc
    tls = any(name in found for name in _TLS_OPTIONS if name != "ssl")
    if tls and found.setdefault("ssl", True) is not True:
        raise ConfigError(
            f"ssl=false with TLS options in {redact(url)!r}: drop ssl=false, or the others"
        )
    return found


def _cluster_parts(url: str) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    """(startup nodes, the nodes' connection options).

    Raises:
        ConfigError: The URL is malformed, names a database but 0, or carries an unknown
            option.
    """
    parts = urlsplit(url)
    nodes, kwargs = _nodes(
        url,
        f"a {CLUSTER_SCHEME} URL lists nodes as host:port,host:port,... (e.g. {_CLUSTER_EXAMPLE})",
    )
    if parts.path.strip("/") not in ("", "0"):
        raise ConfigError(f"Redis Cluster has only database 0; got path {parts.path!r}")
    options = _options(url, CLUSTER_SCHEME, (_MASTER_OPTIONS, _TLS_OPTIONS, _CLUSTER_ALIASES))
    if "tls" in options:  # an older spelling of ssl
        options.setdefault("ssl", options.pop("tls"))
    return nodes, {**kwargs, **options}


def _sentinel_parts(
    url: str,
) -> tuple[list[tuple[str, int]], str, dict[str, Any], dict[str, Any]]:
    """(sentinels, service, the master's connection options, the Sentinels' options).

    Raises:
        ConfigError: The URL is malformed, names no service, or carries an unknown option.
    """
    parts = urlsplit(url)
    sentinels, master = _nodes(
        url,
        f"a {SENTINEL_SCHEME} URL lists its Sentinels as host:port,host:port,... "
        f"(e.g. {_SENTINEL_EXAMPLE})",
    )
    path = [unquote(p) for p in parts.path.split("/") if p]
    if not path or len(path) > 2:
        raise ConfigError(
            f"a {SENTINEL_SCHEME} URL names the service the Sentinels monitor as its path, "
            f"then optionally the database; got path {parts.path!r} in {redact(url)!r} "
            f"(e.g. {_SENTINEL_EXAMPLE})"
        )
    if len(path) == 2:
        if not path[1].isdigit():
            raise ConfigError(f"the database in {redact(url)!r} must be a number, got {path[1]!r}")
        master["db"] = int(path[1])
    options = _options(url, SENTINEL_SCHEME, (_MASTER_OPTIONS, _SENTINEL_OPTIONS, _TLS_OPTIONS))
    own = {
        name.removeprefix("sentinel_"): options.pop(name)
        for name in list(options)
        if name in _SENTINEL_OPTIONS
    }
    master.update(options)
    own.update((name, value) for name, value in options.items() if name in _TLS_OPTIONS)
    return sentinels, path[0], master, own


def _sentinel_client(url: str) -> SyncClient:
    """A blocking client of the master that the Sentinels of `url` name.

    Nothing is sent yet: the first command asks the Sentinels for the master's address.
    """
    sentinels, service, master, own = _sentinel_parts(url)
    timeouts = {k: v for k, v in {**CLIENT_DEFAULTS, **master}.items() if k.startswith("socket_")}
    manager = Sentinel(
        sentinels,
        sentinel_kwargs={**timeouts, **own, "retry": Retry(NoBackoff(), 0)},
        retry=Retry(NoBackoff(), 0),
        **{**CLIENT_DEFAULTS, **master},
    )
    return cast(SyncClient, manager.master_for(service))


def _async_sentinel_client(url: str) -> AsyncClient:
    """`_sentinel_client` for asyncio."""
    sentinels, service, master, own = _sentinel_parts(url)
    timeouts = {k: v for k, v in {**CLIENT_DEFAULTS, **master}.items() if k.startswith("socket_")}
    manager = AsyncSentinel(
        sentinels,
        sentinel_kwargs={**timeouts, **own, "retry": AsyncRetry(NoBackoff(), 0)},
        retry=AsyncRetry(NoBackoff(), 0),
        **{**CLIENT_DEFAULTS, **master},
    )
    return cast(AsyncClient, manager.master_for(service))


def _sentinel(url: str) -> bool:
    return url.lower().startswith(f"{SENTINEL_SCHEME}://")


def sync_client(url: str) -> SyncClient:
    """A blocking client for `url` (single server, cluster, or a master found by Sentinel)."""
    if _sentinel(url):
        return _sentinel_client(url)
    if url.lower().startswith(f"{CLUSTER_SCHEME}://"):
        nodes, kwargs = _cluster_parts(url)
        try:  # the blocking cluster client reads the slot map at once
            return RedisCluster(
                startup_nodes=[ClusterNode(h, p) for h, p in nodes],
                retry=Retry(NoBackoff(), 1),
                **{**CLIENT_DEFAULTS, **kwargs},
            )
        except (RedisClusterException, RedisError) as exc:
            raise translate(exc, tls=options_tls(kwargs)) from exc
    try:
        return redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), **CLIENT_DEFAULTS)
    except ValueError as exc:
        raise ConfigError(f"bad Redis URL {redact(url)!r}: {exc}") from exc


def async_client(url: str) -> AsyncClient:
    """An asyncio client for `url` (single server, cluster, or a master found by Sentinel)."""
    if _sentinel(url):
        return _async_sentinel_client(url)
    if url.lower().startswith(f"{CLUSTER_SCHEME}://"):
        nodes, kwargs = _cluster_parts(url)
        return AsyncRedisCluster(
            startup_nodes=[AsyncClusterNode(h, p) for h, p in nodes],
            retry=AsyncRetry(NoBackoff(), 1),
            **{**CLIENT_DEFAULTS, **kwargs},
        )
    try:
        return aredis.Redis.from_url(url, retry=AsyncRetry(NoBackoff(), 0), **CLIENT_DEFAULTS)
    except ValueError as exc:
        raise ConfigError(f"bad Redis URL {redact(url)!r}: {exc}") from exc
