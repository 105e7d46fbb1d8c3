"""LangGraph's `LANGGRAPH_AES_KEY` convention: encrypt checkpoints with that key when it is set.

LangGraph's server encrypts what it stores with LangGraph's `EncryptedSerializer` (AES, from
pycryptodome) when `LANGGRAPH_AES_KEY` holds a key. The savers this package opens from the
environment (the command line, `agent_server.checkpointer`) do the same.
"""

from __future__ import annotations

import os
from typing import Any

from ._errors import ConfigError, MissingDriverError

__all__ = ["AES_KEY_VARIABLE", "serde_option"]

AES_KEY_VARIABLE = "LANGGRAPH_AES_KEY"


def serde_option(inner: Any | None = None) -> dict[str, Any]:
    """`{"serde": ...}` for a saver's constructor: LangGraph's `EncryptedSerializer` with the
    key of `LANGGRAPH_AES_KEY` around `inner` (our serializer when None); `{}` (the saver's
    own serializer) when the variable is not set.

    Raises:
        ConfigError: the key is not 16, 24 or 32 bytes long.
        MissingDriverError: pycryptodome, which LangGraph's AES cipher needs, is missing.
    """
    if not os.environ.get(AES_KEY_VARIABLE):
        return {}
    from langgraph.checkpoint.serde.encrypted import EncryptedSerializer

    from .serde import MsgpackSerializer

    try:
        serde = EncryptedSerializer.from_pycryptodome_aes(
            serde=MsgpackSerializer() if inner is None else inner
        )
    except ImportError as exc:
        raise MissingDriverError(
            f"{AES_KEY_VARIABLE} is set: encrypted checkpoints need pycryptodome for LangGraph's "
            "AES cipher: pip install 'checkpointers[encryption]' (or unset the variable)"
        ) from exc
    except ValueError as exc:  # LangGraph's message names the variable
        given = len(os.environ[AES_KEY_VARIABLE].encode())
        raise ConfigError(f"{exc} It holds {given} bytes.") from exc
    return {"serde": serde}
