"""redis-py errors: which ones a retry may cure, and their translation to checkpoint_base errors."""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from redis import exceptions as rx
from redis.asyncio.sentinel import MasterNotFoundError as AsyncMasterNotFoundError
from redis.sentinel import MasterNotFoundError

from checkpoint_base import (
    DamagedDataError,
    StorageError,
    StorageFullError,
    StorageUnavailableError,
    ValueTooLargeError,
)

from ._keys import thread_of
from ._tls import ClientTls, closed_hint

__all__ = [
    "BULK_LIMIT_QUERY",
    "RetryPolicy",
    "demoted",
    "largest_argument",
    "maybe_oversized",
    "oversized",
    "retryable",
    "translate",
]

# Redis takes at most `proto-max-bulk-len` bytes in one argument (512 MB by default, never
# less than 1 MB) and closes the connection on a longer one: the client sees it reset, as
# after a restart, or reads the "invalid bulk length" sent before (a cluster node, on the
# connections of redis-py's cluster client). Only an argument past MIN_BULK_LIMIT can be it.
MIN_BULK_LIMIT = 1 << 20
_BULK_REFUSED = "invalid bulk length"
_DEFAULT_BULK_LIMIT = 512 << 20
BULK_LIMIT_QUERY = ("CONFIG", "GET", "proto-max-bulk-len")

# The connection, the node or the slot's master is gone or not ready yet: a failover, a
# restart, a dropped idle connection. Every request of this backend may be sent again.
_TRANSIENT: tuple[type[BaseException], ...] = (
    rx.TimeoutError,
    rx.ClusterDownError,  # includes MASTERDOWN
    rx.TryAgainError,
    rx.ReadOnlyError,  # a write reached a master that was just demoted
    rx.SlotNotCoveredError,
    # No node of a cluster answers (redis-py >= 8.2; before, a bare RedisClusterException).
    *((rx.RedisClusterUnreachableError,) if hasattr(rx, "RedisClusterUnreachableError") else ()),
)
_PERMANENT: tuple[type[BaseException], ...] = (
    rx.AuthenticationError,
    rx.AuthorizationError,
    rx.CrossSlotTransactionError,
    rx.InvalidPipelineStack,
)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long to keep sending a request that failed for a transient reason.

    Attributes:
        timeout: Seconds from the first failure after which the error is raised. A cluster
            needs a few seconds to promote a replica (about `cluster-node-timeout` plus one
            or two seconds); a single server only a reconnect.
        first_delay: Pause after the first failure; doubles up to `max_delay`.
        max_delay: Longest pause between two attempts.
        first_timeout: `timeout` until the server has answered once: a wrong address or a
            server that is down fails fast instead of waiting out a failover budget.
    """

    timeout: float
    first_delay: float = 0.05
    max_delay: float = 0.5
    first_timeout: float = 1.0


def topology_known(client: Any) -> bool:
    """Whether the deployment behind `client` has answered: a cluster client holds a slot
    map (the blocking one reads it when it is made, the asyncio one at its first command), or
    a Sentinel named the master (redis-py's Sentinel pool keeps the address it was given). A
    master that cannot be reached then is a failover under way, which gets the whole
    `RetryPolicy.timeout`, not the `first_timeout` of a server never reached: a saver opened
    while a replica is being promoted waits for it instead of failing in a second."""
    nodes = getattr(client, "nodes_manager", None)
    if nodes is not None:
        return bool(getattr(nodes, "slots_cache", None))
    return getattr(getattr(client, "connection_pool", None), "master_address", None) is not None


# A master refusing writes for want of replicas in sync (`min-replicas-to-write`): a replica
# is down or lagging, or the master was just demoted by a failover and lost them all.
_NOREPLICAS = "NOREPLICAS"
# What OpenSSL calls a handshake refused over a certificate (its reasons, in upper case).
_CERTIFICATE_WORDS = ("CERTIFICATE", "UNKNOWN_CA")
# What OpenSSL says of a certificate valid for other names than the host connected to.
_HOSTNAME_MISMATCH = "Hostname mismatch"
# How redis-py's MasterNotFoundError quotes a Sentinel that refused the client's credentials.
_SENTINEL_AUTH = "AuthenticationError"
_CLIENT_REPR = re.compile(r"<redis\.(?:asyncio\.)?client\.Redis\(")
_ADDRESS = re.compile(r"host=([^,()<>]+),port=(\d+)")


def _compact_clients(text: str) -> str:
    """`text` with each repr of a redis-py client in it (redis-py's MasterNotFoundError
    quotes one per Sentinel, a few kB with its pool and connection) cut to its address."""
    out: list[str] = []
    at = 0
    for found in _CLIENT_REPR.finditer(text):
        if found.start() < at:
            continue  # inside a repr already cut
        depth, end = 0, len(text)
        for index in range(found.start(), len(text)):
            if text[index] == "<":
                depth += 1
            elif text[index] == ">":
                depth -= 1
                if depth == 0:
                    end = index + 1
                    break
        address = _ADDRESS.search(text, found.start(), end)
        out.append(text[at : found.start()])
        out.append(f"Sentinel {address.group(1)}:{address.group(2)}" if address else "a Sentinel")
        at = end
    out.append(text[at:])
    return "".join(out)


# What redis-py's Sentinel connection raises for a READONLY reply from its "master".
_SENTINEL_DEMOTED = "The previous master is now a slave"


def _no_replicas(exc: BaseException) -> bool:
    # Anywhere in the message: a script's error may put its position first (Redis 6).
    return isinstance(exc, rx.ResponseError) and _NOREPLICAS in str(exc)


def demoted(exc: BaseException) -> bool:
    """True when `exc` says the server reached is no longer the master, or may not be
    (`NOREPLICAS`): connections kept to it must be dropped, so that the next one asks anew
    (a Sentinel, or the DNS name of a managed service's primary endpoint)."""
    return (
        isinstance(exc, rx.ReadOnlyError)
        or _no_replicas(exc)
        or (isinstance(exc, rx.ConnectionError) and str(exc).startswith(_SENTINEL_DEMOTED))
    )


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and the errors it was raised from or while handling, at most 8 of them."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return
        yield seen
        seen = seen.__cause__ or seen.__context__


def _tls_refused(exc: BaseException) -> bool:
    """Whether the TLS handshake failed over a certificate (ours not trusted by the server,
    or its not trusted by us): sending again fails again. Behind Sentinel the handshake
    errors with each Sentinel are only quoted in the MasterNotFoundError."""
    if isinstance(exc, (MasterNotFoundError, AsyncMasterNotFoundError)):
        return any(word in str(exc) for word in _CERTIFICATE_WORDS)
    for seen in _chain(exc):  # redis-py raises its ConnectionError while handling the ssl error
        if isinstance(seen, ssl.SSLError):
            reason = str(getattr(seen, "reason", "") or "")
            return isinstance(seen, ssl.SSLCertVerificationError) or any(
                word in reason for word in _CERTIFICATE_WORDS
            )
    return False


def _auth_refused(exc: BaseException) -> bool:
    """Whether the server refused the client's credentials (NOAUTH, WRONGPASS): sending
    again fails again. A cluster client that reached no node raises a
    RedisClusterException with the AuthenticationError as its cause."""
    return any(isinstance(seen, rx.AuthenticationError) for seen in _chain(exc))


def retryable(exc: BaseException) -> bool:
    """True when `exc` is transient: the request may succeed if sent again."""
    if isinstance(exc, _PERMANENT) or _tls_refused(exc) or _auth_refused(exc):
        return False
    if isinstance(exc, (MasterNotFoundError, AsyncMasterNotFoundError)):
        return _SENTINEL_AUTH not in str(exc)  # each Sentinel's error is only quoted there
    if isinstance(exc, (rx.ConnectionError, *_TRANSIENT)) or _closed_under_a_write(exc):
        return True
    if _no_replicas(exc):
        return True
    # redis-py's cluster client raises a bare RedisClusterException (not a RedisError) when
    # no node answers, and a bare ClusterError ("TTL exhausted") when a command met redirects
    # or TRYAGAIN (keys of a slot being migrated, split between two nodes) 16 times in a row.
    return type(exc) in (rx.RedisClusterException, rx.ClusterError)


def _closed_under_a_write(exc: BaseException) -> bool:
    """A connection that redis-py's asyncio code found closed as it wrote (another task of a
    shared cluster client dropped it): redis-py 8.2 raises ConnectionError for it, 8.1 (the
    last for Python 3.10) leaked "'NoneType' object has no attribute 'writelines'", or a
    TypeError from the transport, out of its connection module."""
    if not isinstance(exc, (AttributeError, TypeError)):
        return False
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    where = tb.tb_frame.f_code.co_filename.replace("\\", "/")
    return where.endswith("redis/asyncio/connection.py")


# What Lua's cmsgpack says of a stored checkpoint value it cannot read (`links_of`).
_LUA_UNREADABLE = ("Missing bytes in input", "Bad data format in input")


def translate(
    exc: BaseException, request: Any = None, *, tls: ClientTls | None = None
) -> StorageError:
    """The checkpoint_base error for a redis-py error (the caller chains it with `from`).

    `request`, when given, is the request that failed: its keys name the thread in errors
    that the thread's own keys cause (a key of another type, a damaged checkpoint value).
    `tls`, when known, is how the client connects (`client_tls`): a connection the server
    closed then names the fix that fits it.
    """
    detail = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, rx.ResponseError) and request is not None:
        found = _about_keys(exc, detail, request)
        if found is not None:
            return found
    if isinstance(exc, _PERMANENT) and not isinstance(exc, rx.RedisError):
        return StorageError(f"Redis cluster rejected the request ({detail})")
    if _tls_refused(exc):
        detail = f"{type(exc).__name__}: {_compact_clients(str(exc))}"
        return StorageError(
            f"the TLS handshake with Redis failed over a certificate ({detail}). If the "
            "server's certificate is not trusted, give its CA in the URL's query "
            "(?ssl_ca_certs=/path/ca.pem); if the server asks for a client certificate, give "
            "it (ssl_certfile=/path/cert.pem&ssl_keyfile=/path/key.pem)"
            + (
                "; the certificate names another host than the one connected to: connect by a "
                "name it gives, or, where nodes are reached by address (a cluster announcing "
                "its nodes' IPs), ssl_check_hostname=false"
                if _HOSTNAME_MISMATCH in str(exc)
                else ""
            )
        )
    if _auth_refused(exc):
        return StorageError(
            f"Redis refused the credentials ({detail}): give the server's password in the URL "
            "(redis://:password@host:6379/0, or user:password@ for an ACL user; "
            "redis+cluster:// and redis+sentinel:// URLs take them the same way, and the "
            "Sentinels' own as sentinel_password=)"
        )
    if _no_replicas(exc):
        return StorageUnavailableError(
            f"the Redis master refuses writes: fewer replicas are in sync than its "
            f"min-replicas-to-write asks for ({detail}); nothing of this call was stored. A "
            "replica is down or lagging, or a failover demoted this master: start or repair "
            "a replica, or raise retry_timeout to wait for the failover"
        )
    if isinstance(exc, (MasterNotFoundError, AsyncMasterNotFoundError)):
        detail = f"{type(exc).__name__}: {_compact_clients(str(exc))}"
        if _SENTINEL_AUTH in str(exc):
            return StorageError(
                f"the Sentinels refused the credentials ({detail}): give theirs in the query "
                "of the redis+sentinel:// URL (sentinel_password=, and sentinel_username= for "
                "an ACL user); the master's go before the host (redis+sentinel://:password@...)"
            )
        return StorageUnavailableError(
            f"no Sentinel named a master that is up ({detail}). Check the service name (the "
            "path of a redis+sentinel:// URL) against the Sentinels' `sentinel monitor` "
            "lines, and that the Sentinels listed are reachable"
        )
    if retryable(exc):
        return StorageUnavailableError(
            f"Redis is unreachable or failing over ({detail}){closed_hint(exc, tls)}"
        )
    if isinstance(exc, rx.ClusterCrossSlotError):
        return StorageError(f"Redis cluster: keys of one request span slots ({detail})")
    if isinstance(exc, rx.ResponseError) and _BULK_REFUSED in str(exc):
        return ValueTooLargeError(
            f"Redis refused an argument of {largest_argument(request):,} bytes as longer than "
            f"it takes in one argument ({detail}). Store a smaller value, or raise "
            "proto-max-bulk-len on every node (CONFIG SET proto-max-bulk-len)."
        )
    if isinstance(exc, rx.OutOfMemoryError):
        return StorageFullError(
            f"Redis is out of memory ({detail}): the server reached its maxmemory and, "
            "evicting nothing (maxmemory-policy noeviction), refuses writes; nothing of this "
            "call was stored. Make room: delete or prune threads (`checkpointers delete "
            "--idle 30d`, `checkpointers prune`), give threads a time to live (`ttl=`), or "
            "raise maxmemory"
        )
    return StorageError(f"Redis error ({detail})")


def largest_argument(request: Any) -> int:
    """The length of the longest argument of a request (of any request of a batch)."""
    parts = getattr(request, "requests", None)
    if parts is not None:
        return max(map(largest_argument, parts), default=0)
    args = (*getattr(request, "keys", ()), *request.args)
    return max(
        (len(a.encode("utf-8", "surrogatepass")) if isinstance(a, str) else len(a) for a in args
         if isinstance(a, (bytes, bytearray, memoryview, str))),
        default=0,
    )  # fmt: skip


def maybe_oversized(exc: BaseException, request: Any) -> bool:
    """Whether `exc` may be the server refusing a too long argument of `request`: it then
    takes one more request (`BULK_LIMIT_QUERY`) to tell, made only on this error path."""
    if not (retryable(exc) or (isinstance(exc, rx.ResponseError) and _BULK_REFUSED in str(exc))):
        return False
    return largest_argument(request) > MIN_BULK_LIMIT


def oversized(request: Any, reply: Any) -> ValueTooLargeError | None:
    """The error for `request` when an argument is longer than the server takes, else None.

    `reply`: the server's answer to `BULK_LIMIT_QUERY`, or None when it could not be asked
    (CONFIG disabled, as on managed services, or the server gone): 512 MB is then assumed.
    """
    size = largest_argument(request)
    if isinstance(reply, dict):
        reply = [x for pair in reply.items() for x in pair]
    value = reply[1] if isinstance(reply, (list, tuple)) and len(reply) == 2 else None
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    told = value if isinstance(value, str) and value.isdigit() else None
    limit = _DEFAULT_BULK_LIMIT if told is None else int(told)
    if size <= limit:
        return None
    said = "" if told is not None else ", the default: the server did not say"
    return ValueTooLargeError(
        f"Redis closed the connection on an argument of {size:,} bytes, longer than the server "
        f"takes in one argument (proto-max-bulk-len = {limit:,} bytes{said}). Store a smaller "
        "value, or raise proto-max-bulk-len on every node (CONFIG SET proto-max-bulk-len)."
    )


def _keys_of(request: Any) -> list[bytes]:
    keys = getattr(request, "keys", None)
    if keys is not None:
        return [k for k in keys if isinstance(k, bytes)]
    args = getattr(request, "args", None)
    if args is not None:  # a Command: its arguments after the name may be keys
        return [a for a in args[1:] if isinstance(a, bytes)]
    parts = getattr(request, "requests", None)
    return [k for r in parts or () for k in _keys_of(r)]


def _about_keys(exc: rx.ResponseError, detail: str, request: Any) -> StorageError | None:
    """A clearer error for WRONGTYPE and for a checkpoint value Lua cannot read, else None."""
    message = str(exc)
    keys = _keys_of(request)
    thread_id = next((t for t in map(thread_of, keys) if t is not None), None)
    if "WRONGTYPE" in message:
        shown = ", ".join(repr(k) for k in keys[:12]) + (", ..." if len(keys) > 12 else "")
        where = f" (a request on thread {thread_id!r})" if thread_id is not None else ""
        return StorageError(
            f"Redis{where}: a key holds a value of another type than checkpointers stores "
            f"there ({detail}). Another application writes under this saver's key prefix, or "
            f"a key was changed by hand; the request used the keys {shown}. Give each "
            "application a key_prefix of its own, and delete the foreign key (or the thread, "
            "saver.delete_thread) to go on."
        )
    if thread_id is not None and any(m in message for m in _LUA_UNREADABLE):
        return DamagedDataError(
            "a stored checkpoint value (read by the server's script)",
            thread_id=thread_id,
            detail=detail,
        )
    return None
