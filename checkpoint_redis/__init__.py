"""checkpoint_redis: LangGraph checkpoints on Redis, Valkey and Redis Cluster, no modules needed.

    from checkpoint_redis import RedisSaver

    with RedisSaver.from_conn_string("redis://localhost:6379/0", ttl=7 * 24 * 3600) as saver:
        saver.setup()
        graph = builder.compile(checkpointer=saver)

Or through `checkpoint_base.connect("redis://...")`, `"rediss://..."` (TLS),
`"redis+cluster://host:port,host:port"` and `"redis+sentinel://host:port,host:port/service"`.
Requires `pip install 'checkpointers[redis]'`.
"""

from __future__ import annotations

try:
    import redis as _redis  # noqa: F401
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
    from checkpoint_base import MissingDriverError

    raise MissingDriverError(
        "checkpoint_redis needs redis-py: pip install 'checkpointers[redis]'"
    ) from exc

from ._backend import DEFAULT_PREFIX, MIGRATIONS, RedisBackend, RedisClusterBackend
from ._errors import RetryPolicy
from ._eviction import EvictionWarning
from ._saver import AsyncRedisSaver, RedisSaver
from ._sentinel import FailoverWarning

__all__ = [
    "DEFAULT_PREFIX",
    "MIGRATIONS",
    "AsyncRedisSaver",
    "EvictionWarning",
    "FailoverWarning",
    "RedisBackend",
    "RedisClusterBackend",
    "RedisSaver",
    "RetryPolicy",
]
