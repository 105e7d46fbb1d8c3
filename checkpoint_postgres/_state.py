"""What the sync and the async executor share about one plan run: its retry rule."""

from __future__ import annotations

from typing import Generic, TypeVar

from psycopg import pq

from ._query import Query

__all__ = ["RunState"]

C = TypeVar("C")
X = TypeVar("X")


class RunState(Generic[C, X]):
    """One plan's connection `C`, its open transaction `X` if any, and its retry budget.

    A failed statement may run again once: outside a transaction when it is idempotent (it
    committed on its own, or not at all); inside one only after a lost connection hit the
    first statement (nothing of the transaction can have committed). Never when the plan
    started inside the caller's own transaction: that transaction is gone with the
    connection, and continuing on a new one would split it.
    """

    __slots__ = ("conn", "held", "outer_tx", "retried", "statements", "tx")

    def __init__(self, conn: C, status: pq.TransactionStatus) -> None:
        self.conn = conn
        self.held = True  # false while a pooled connection is being swapped
        self.outer_tx = status != pq.TransactionStatus.IDLE
        self.tx: X | None = None
        self.statements = 0  # run inside `tx` so far
        self.retried = False

    def may_retry(self, query: Query, lost: bool) -> bool:
        """Whether the statement that just failed may run once more."""
        if self.retried or self.outer_tx:
            return False
        if self.tx is not None:
            return lost and self.statements == 0
        return query.idempotent
