"""The checkpoint serializer: msgpack, safe by default, faithful to the types it stores.

See `MsgpackSerializer`. Everything else here is an error class.
"""

from __future__ import annotations

from ._codes import TYPE_TAG
from ._errors import (
    DisallowedTypeError,
    EncryptedDataError,
    MalformedDataError,
    NestingTooDeepError,
    SerializationError,
    TypeNotFoundError,
    UnsupportedTypeError,
)
from ._serializer import MsgpackSerializer

__all__ = [
    "TYPE_TAG",
    "DisallowedTypeError",
    "EncryptedDataError",
    "MalformedDataError",
    "MsgpackSerializer",
    "NestingTooDeepError",
    "SerializationError",
    "TypeNotFoundError",
    "UnsupportedTypeError",
]
