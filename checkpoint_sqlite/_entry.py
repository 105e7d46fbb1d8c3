"""The `sqlite` entry of `checkpointers.backends`: what `connect("sqlite:///...")` opens."""

from __future__ import annotations

from typing import Any

from checkpoint_base import BackendEntry

from ._async import AsyncSqliteSaver
from ._sync import SqliteSaver

__all__ = ["BACKEND"]


def _connect(url: str, **options: Any) -> SqliteSaver:
    return SqliteSaver.open(url, **options)


async def _aconnect(url: str, **options: Any) -> AsyncSqliteSaver:
    return await AsyncSqliteSaver.open(url, **options)


BACKEND = BackendEntry(connect=_connect, aconnect=_aconnect, extra="sqlite")
