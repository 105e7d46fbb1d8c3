"""A checkpointer for LangGraph's Agent Server (`langgraph dev`, LangSmith deployments).

The server takes a custom checkpointer from `langgraph.json`: the import path of an async
context manager that yields a `BaseCheckpointSaver`, entered once per event loop it runs
graphs on and closed at shutdown. `checkpointer` is one, for any URL of this package:

    {
      "graphs": {"agent": "./agent.py:graph"},
      "checkpointer": {"path": "checkpoint_base.agent_server.checkpointer"}
    }

with the storage named by the environment (`.env`, or the deployment's variables):

- `CHECKPOINTERS_URL`: the storage, as for `aconnect` (`sqlite:///checkpoints.db`,
  `postgresql://...`, `redis://...`); required. It may carry the time to live itself, in
  seconds (`sqlite:///checkpoints.db?ttl=2592000`, see `connect`), instead of the two
  variables below; the same option in both places is an error.
- `CHECKPOINTERS_KEEP_LAST`: keep only the newest N checkpoints of each namespace of a
  thread (see `CheckpointSaver.keep_last`); unset keeps them all.
- `CHECKPOINTERS_TTL`: delete a thread's checkpoints once no one wrote to it for this long
  (`30d`, `12h`, `90m`, `1d12h`, or seconds): Redis expires its keys, the other backends are
  swept by the server's process as it runs (see `connect`'s `ttl`); unset keeps them until
  deleted. `langgraph dev` does not apply the `ttl` of `langgraph.json`'s `checkpointer`
  section (the in-memory runtime's thread sweep is a no-op); this does. It deletes the
  checkpoints only: the server's record of the thread stays, with an empty state.
- `CHECKPOINTERS_TTL_STRATEGY`: with `CHECKPOINTERS_TTL`, `delete` (the default) or
  `keep_latest`: an idle thread keeps its latest state and loses its history (the two
  strategies of `langgraph.json`'s `ttl`).
- `LANGGRAPH_AES_KEY`: as for the server's own checkpointer, values are stored encrypted with
  this key (LangGraph's `EncryptedSerializer`, AES; `pip install 'checkpointers[encryption]'`).
- `CHECKPOINTERS_ALLOW`: classes of the application that values may hold beyond those the
  graphs' state schemas name (which the server allows when it compiles a graph), for example
  a pydantic model inside an `Any` field: `my_app.models:Ticket`, or `my_app.models` for every
  dataclass, pydantic model, enum and named tuple it defines; several separated by commas or
  spaces. The modules are imported when the checkpointer opens.

Every operation the server calls on a checkpointer is one of this package's savers'
(`adelete_thread`, `adelete_for_runs`, `acopy_thread` and `aprune` included), and they do not
block the event loop, which `langgraph dev` enforces.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

from ._allow import allowed_pairs
from ._cli_format import parse_seconds
from ._connect import aconnect
from ._encryption import serde_option
from ._errors import ConfigError
from ._saver import CheckpointSaver
from ._sweeper import STRATEGIES

__all__ = [
    "ALLOW_VARIABLE",
    "KEEP_LAST_VARIABLE",
    "TTL_STRATEGY_VARIABLE",
    "TTL_VARIABLE",
    "URL_VARIABLE",
    "checkpointer",
]

URL_VARIABLE = "CHECKPOINTERS_URL"
KEEP_LAST_VARIABLE = "CHECKPOINTERS_KEEP_LAST"
ALLOW_VARIABLE = "CHECKPOINTERS_ALLOW"
TTL_VARIABLE = "CHECKPOINTERS_TTL"
TTL_STRATEGY_VARIABLE = "CHECKPOINTERS_TTL_STRATEGY"


@contextlib.asynccontextmanager
async def checkpointer() -> AsyncIterator[CheckpointSaver]:
    """An async saver for `CHECKPOINTERS_URL`, set up, closed on exit (see the module).

    Raises:
        ConfigError: `CHECKPOINTERS_URL` is unset, `CHECKPOINTERS_KEEP_LAST` is not a whole
            number of at least 1, `CHECKPOINTERS_TTL` is not a positive duration (or
            `CHECKPOINTERS_TTL_STRATEGY` neither `delete` nor `keep_latest`),
            `CHECKPOINTERS_ALLOW` names a module that does not import or
            a class it lacks, or `LANGGRAPH_AES_KEY` is not 16, 24 or 32 bytes long.
        MissingDriverError: `LANGGRAPH_AES_KEY` is set and pycryptodome is missing.
    """
    url = os.environ.get(URL_VARIABLE, "").strip()
    if not url:
        raise ConfigError(
            f"{URL_VARIABLE} is not set: name the storage of the Agent Server's checkpoints, "
            "for example sqlite:///checkpoints.db, postgresql://user@host/db or "
            "redis://host:6379/0 (in .env or the deployment's environment)"
        )
    keep_last = None
    raw = os.environ.get(KEEP_LAST_VARIABLE, "").strip()
    if raw:
        try:
            keep_last = int(raw)
        except ValueError:
            raise ConfigError(
                f"{KEEP_LAST_VARIABLE}={raw!r}: give a whole number of checkpoints to keep "
                "per namespace of a thread (at least 1), or unset it to keep every one"
            ) from None
    ttl = _ttl()
    strategy = os.environ.get(TTL_STRATEGY_VARIABLE, "").strip() or "delete"
    if strategy not in STRATEGIES or (ttl is None and strategy != "delete"):
        raise ConfigError(
            f"{TTL_STRATEGY_VARIABLE}={strategy!r}: give delete (idle threads go whole) or "
            f"keep_latest (they keep their latest state), with {TTL_VARIABLE} set (a "
            f"{URL_VARIABLE} that gives ttl= takes its ttl_strategy= there too)"
        )
    specs = os.environ.get(ALLOW_VARIABLE, "").replace(",", " ").split()
    pairs = allowed_pairs(specs, ALLOW_VARIABLE) if specs else []
    options = {"ttl": ttl, "ttl_strategy": strategy, **serde_option()}
    async with aconnect(url, keep_last=keep_last, **options) as saver:
        yield saver.with_allowlist(pairs) if pairs else saver


def _ttl() -> float | None:
    raw = os.environ.get(TTL_VARIABLE, "").strip()
    if not raw:
        return None
    try:
        seconds = parse_seconds(raw)
    except ValueError:
        seconds = 0.0
    if not seconds > 0 or seconds == float("inf"):
        raise ConfigError(
            f"{TTL_VARIABLE}={raw!r}: give how long a thread lives after its last write, as "
            "a positive duration (30d, 12h, 90m, 1d12h) or seconds, or unset it to keep threads"
        )
    return seconds
