"""redis-py errors: which ones a retry may cure, and their translation to checkpoint_base errors."""

from __future__ import annotations

from dataclasses import dataclass

from redis import exceptions as rx

from checkpoint_base import StorageError, StorageUnavailableError

__all__ = ["RetryPolicy", "retryable", "translate"]

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


def retryable(exc: BaseException) -> bool:
    """True when `exc` is transient: the request may succeed if sent again."""
    if isinstance(exc, _PERMANENT):
        return False
    if isinstance(exc, (rx.ConnectionError, *_TRANSIENT)):
        return True
    # redis-py's cluster client raises a bare RedisClusterException (not a RedisError) when
    # no node answers, and a bare ClusterError ("TTL exhausted") when a command met redirects
    # or TRYAGAIN (keys of a slot being migrated, split between two nodes) 16 times in a row.
    return type(exc) in (rx.RedisClusterException, rx.ClusterError)


def translate(exc: BaseException) -> StorageError:
    """The checkpoint_base error for a redis-py error (the caller chains it with `from`)."""
    detail = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, _PERMANENT) and not isinstance(exc, rx.RedisError):
        return StorageError(f"Redis cluster rejected the request ({detail})")
    if retryable(exc):
        return StorageUnavailableError(f"Redis is unreachable or failing over ({detail})")
    if isinstance(exc, rx.ClusterCrossSlotError):
        return StorageError(f"Redis cluster: keys of one request span slots ({detail})")
    if isinstance(exc, rx.OutOfMemoryError):
        return StorageError(f"Redis is out of memory (maxmemory reached; {detail})")
    return StorageError(f"Redis error ({detail})")
