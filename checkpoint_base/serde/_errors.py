"""Errors of the serializer: one base class, one subclass per thing a caller may act on."""

from __future__ import annotations

import functools
import re
from importlib import metadata

__all__ = [
    "DisallowedTypeError",
    "EncryptedDataError",
    "MalformedDataError",
    "NestingTooDeepError",
    "SerializationError",
    "TypeNotFoundError",
    "UnsupportedTypeError",
]


class SerializationError(Exception):
    """Base class of every error raised by `MsgpackSerializer`."""


class UnsupportedTypeError(SerializationError, TypeError):
    """`dumps_typed` met a value of a type it cannot write faithfully."""


class MalformedDataError(SerializationError, ValueError):
    """`loads_typed` got bytes that are not a valid payload of their type tag."""


class EncryptedDataError(MalformedDataError):
    """`loads_typed` got a value that LangGraph's `EncryptedSerializer` encrypted (its type tag
    ends in `+` and the cipher's name, as `msgpack.cp2+aes` does): only a serializer that holds
    the key reads it.

    Attributes:
        type_tag: The stored type tag.
        cipher: The cipher the tag names.
    """

    def __init__(self, type_tag: str) -> None:
        self.type_tag = type_tag
        self.cipher = type_tag.rpartition("+")[2]
        super().__init__(
            f"the value is encrypted (type tag {type_tag!r}: LangGraph's EncryptedSerializer, "
            f"cipher {self.cipher!r}) and this serializer holds no key. Read it with the "
            "serializer that wrote it, as in serde=EncryptedSerializer.from_pycryptodome_aes("
            "serde=MsgpackSerializer(), key=...); the checkpointers command does so when "
            "LANGGRAPH_AES_KEY holds the key"
        )


class NestingTooDeepError(SerializationError, ValueError):
    """A value nests containers deeper than msgpack allows (about 1,000 levels)."""


class DisallowedTypeError(SerializationError):
    """Stored data names a class that the allowlist does not contain.

    Attributes:
        module: The module named by the stored data.
        qualname: The class name (qualified name) named by the stored data.
    """

    def __init__(self, module: str, qualname: str) -> None:
        self.module = module
        self.qualname = qualname
        name = qualname.rpartition(".")[2]
        super().__init__(
            f"Refusing to rebuild {module}.{qualname} from stored data: the type is not in the "
            f"serializer's allowlist. If you trust it, allow it with "
            f"serde.with_allowlist([({module!r}, {name!r})]) or "
            f"MsgpackSerializer(allowed=[{name}]), or use it in the graph's state schema "
            f"(a graph compiled with a checkpointers saver registers its schema's types "
            f"through with_allowlist{schema_hand_off(langgraph_version())})."
        )


SCHEMA_HAND_OFF = (1, 0, 10)
"""The first LangGraph that hands a graph's schema types to its saver (`with_allowlist`)."""


def schema_hand_off(langgraph: str | None) -> str:
    """What `DisallowedTypeError` adds about LangGraph `langgraph` (its version; None when it is
    not installed): nothing when that LangGraph registers the schema's types, else that it
    does not and which one does."""
    if langgraph is None:
        return ""
    numbers = re.match(r"(\d+)(?:\.(\d+))?(?:\.(\d+))?", langgraph)
    if numbers is None:
        return ""
    if tuple(int(n or 0) for n in numbers.groups()) >= SCHEMA_HAND_OFF:
        return ""
    first = ".".join(map(str, SCHEMA_HAND_OFF))
    return f"; LangGraph {langgraph}, installed here, does not: {first} and later do"


@functools.cache
def langgraph_version() -> str | None:
    """The installed LangGraph's version; None when it is not installed (langgraph-checkpoint
    alone provides the `langgraph` namespace, so only the distribution's metadata tells)."""
    try:
        return metadata.version("langgraph")
    except metadata.PackageNotFoundError:
        return None


class TypeNotFoundError(SerializationError):
    """An allowlisted class named by stored data cannot be found in this process.

    The serializer never imports a module because stored data names it; import the module that
    defines the class before loading.

    Attributes:
        module: The module named by the stored data.
        qualname: The class name (qualified name) named by the stored data.
    """

    def __init__(self, module: str, qualname: str, reason: str) -> None:
        self.module = module
        self.qualname = qualname
        super().__init__(
            f"Cannot rebuild {module}.{qualname}: {reason}. The serializer never imports modules "
            f"named by stored data; import {module!r} before loading, or pass the class itself "
            f"to MsgpackSerializer(allowed=[...]) or with_allowlist([...])."
        )
