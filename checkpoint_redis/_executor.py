"""The sync executor: runs Redis plans on `redis.Redis` or `redis.cluster.RedisCluster`.

Each request of a plan is one round trip: a script (EVALSHA, or EVAL the first time a server
lacks it), a command, or a pipeline. Redis has no transaction spanning requests, so a plan
holds no connection between them: redis-py's pool hands one out per request and takes it
back, and concurrent callers never wait on each other here. A request that fails for a
transient reason (lost connection, failover) is sent again until `RetryPolicy.timeout`.
"""

from __future__ import annotations

import time
from typing import Any, TypeVar

import redis
from redis import exceptions as rx
from redis.cluster import RedisCluster

from checkpoint_base import Plan, ValueTooLargeError, run

from ._cluster_lane import REROUTE, ClusterLanes, slot_key
from ._errors import (
    BULK_LIMIT_QUERY,
    RetryPolicy,
    demoted,
    maybe_oversized,
    oversized,
    retryable,
    topology_known,
    translate,
)
from ._lane import Lane, lane_for
from ._requests import Batch, Command, Eval, Transaction, commands, queue
from ._sentinel import is_sentinel
from ._tls import client_tls

__all__ = ["RedisExecutor", "SyncClient"]

T = TypeVar("T")
SyncClient = redis.Redis | RedisCluster


class RedisExecutor:
    """Runs plans on a blocking redis-py client.

    Args:
        client: A `redis.Redis` (single server) or `redis.cluster.RedisCluster`.
        owned: Close the client in `close()` (true when the saver created it); a client the
            saver owns sends its scripts and transactions on a `Lane` (on a cluster, the lane
            of the keys' master: `ClusterLanes`).
        retry: How long to ride out transient failures.
    """

    def __init__(self, client: SyncClient, *, owned: bool, retry: RetryPolicy) -> None:
        self.client = client
        self._owned = owned
        self._retry = retry
        self._answered = False  # a server that never answered is unreachable, not failing over
        self._lane = lane_for(client, owned)
        self._lanes = ClusterLanes(client) if owned and isinstance(client, RedisCluster) else None

    @property
    def cheap_transactions(self) -> bool:
        """True when transactions go on a lane: as cheap as a script call."""
        return self._lane is not None or self._lanes is not None

    def run(self, plan: Plan[T]) -> T:
        """Run one plan; every request is retried alone on a transient failure."""
        return run(plan, self._execute)

    def _execute(self, request: Eval | Command | Transaction | Batch) -> Any:
        started: float | None = None
        delay = self._retry.first_delay
        while True:
            try:
                result = self._perform(request)
            except Exception as exc:
                too_big = self._oversized(request, exc)
                if too_big is not None:
                    raise too_big from exc
                if not retryable(exc):
                    raise translate(exc, request, tls=client_tls(self.client)) from exc
                if demoted(exc):
                    self._forget()
                now = time.monotonic()
                started = now if started is None else started
                answered = self._answered or topology_known(self.client)
                timeout = self._retry.timeout if answered else self._retry.first_timeout
                if now + delay - started > timeout:
                    raise translate(exc, request, tls=client_tls(self.client)) from exc
            else:
                self._answered = True
                return result
            time.sleep(delay)
            delay = min(delay * 2, self._retry.max_delay)

    def _forget(self) -> None:
        """Drop the connections kept to a server that is no longer the master (`demoted`):
        the next ones ask a Sentinel (or the name's DNS) where the master is now."""
        if self._lane is not None:
            self._lane.close(disconnect=True)
        client: Any = self.client  # a Sentinel client is a redis.Redis
        if is_sentinel(client):
            client.connection_pool.disconnect(inuse_connections=False)

    def _oversized(
        self, request: Eval | Command | Transaction | Batch, exc: Exception
    ) -> ValueTooLargeError | None:
        """The error when `exc` is the server refusing an argument of `request` as longer
        than it takes (sending it again would fail again), else None."""
        if not maybe_oversized(exc, request):
            return None
        client: Any = self.client
        try:
            reply = client.execute_command(*BULK_LIMIT_QUERY)
        except Exception:  # CONFIG disabled, or the server is gone indeed
            reply = None
        return oversized(request, reply)

    def _perform(self, request: Eval | Command | Transaction | Batch) -> Any:
        client: Any = self.client  # RedisCluster's execute_command is untyped
        if isinstance(request, Eval):
            keys = request.keys
            lane = self._lane_for(request)
            try:
                return self._call(
                    lane, "EVALSHA", request.script.sha, len(keys), *keys, *request.args
                )
            except rx.NoScriptError:
                return self._call(
                    lane, "EVAL", request.script.text, len(keys), *keys, *request.args
                )
        if isinstance(request, Command):
            return client.execute_command(*request.args)
        if isinstance(request, Transaction):
            return self._transaction(request)
        return self._batch(request)

    def _lane_for(self, request: Eval | Transaction) -> Lane | None:
        if self._lanes is not None:
            return self._lanes.for_key(slot_key(request))
        return self._lane

    def _call(self, lane: Lane | None, *args: Any) -> Any:
        """One command on `lane`, or through redis-py when there is none; on a cluster,
        what the lane cannot settle (a redirect, a failover) is redis-py's to route."""
        client: Any = self.client  # RedisCluster's execute_command is untyped
        if lane is None:
            return client.execute_command(*args)
        if self._lanes is None:
            return lane.call(*args)
        try:
            return lane.call(*args)
        except REROUTE:
            return client.execute_command(*args)

    def _transaction(self, tx: Transaction) -> list[Any]:
        try:
            return self._multi(tx)
        except rx.OutOfMemoryError:
            if tx.inline is None:
                raise
            # A server at maxmemory refuses every command queued in MULTI, reads too. The
            # one-script form runs outside MULTI, where only a write is refused (the
            # script's first: nothing of it applies).
            return [self._perform(tx.inline())]

    def _multi(self, tx: Transaction) -> list[Any]:
        lane = self._lane_for(tx)
        if lane is not None:  # EXEC's replies raw: no caller reads them
            try:
                try:
                    return lane.transaction(commands(tx.requests))
                except rx.NoScriptError:  # EXEC applied the rest; again with the scripts' text
                    return lane.transaction(commands(tx.requests, by_text=True))
            except REROUTE:
                if self._lanes is None:
                    raise  # a single server: the executor's retry
                if tx.inline is not None:
                    # A cluster: the one-script form through redis-py, which follows MOVED
                    # and ASK; its transaction pipeline cannot send ASKING (a slot being
                    # migrated), it takes ASK for MOVED.
                    return [self._perform(tx.inline())]
                # Else redis-py's pipeline below routes it.
        pipe = self.client.pipeline(transaction=True)
        queue(pipe, tx.requests)
        try:
            try:
                results: list[Any] = pipe.execute()
            except rx.NoScriptError:  # EXEC applied the rest; again with the scripts' text
                pipe = self.client.pipeline(transaction=True)
                queue(pipe, tx.requests, by_text=True)
                results = pipe.execute()
        except REROUTE:
            if tx.inline is None or not isinstance(self.client, RedisCluster):
                raise
            # The user's cluster client (no lanes): redis-py's transaction took ASK for
            # MOVED until its retries ran out, and a redirect aborts the MULTI, nothing
            # applied. The one-script form follows ASK.
            return [self._perform(tx.inline())]
        return results

    def _batch(self, batch: Batch) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        queue(pipe, batch.requests)
        try:
            results: list[Any] = pipe.execute()
        except rx.NoScriptError:
            # A node lacks a script (restart, failover, SCRIPT FLUSH): one by one, each
            # with its EVAL fallback. Every request is idempotent, so repeating is safe.
            return [self._perform(request) for request in batch.requests]
        return results

    def close(self) -> None:
        """Close the client if the saver created it."""
        if self._lane is not None:
            self._lane.close()
        if self._lanes is not None:
            self._lanes.close()
        if self._owned:
            self.client.close()
