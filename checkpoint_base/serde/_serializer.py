"""`MsgpackSerializer`: LangGraph's `SerializerProtocol`, safe by default."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from . import _codes as C
from ._allowlist import Resolver, normalize
from ._decode import Decoder
from ._encode import encode_typed
from ._errors import EncryptedDataError, MalformedDataError
from ._legacy import loads_jsonplus_json, loads_jsonplus_msgpack

__all__ = ["MsgpackSerializer"]

_EMPTY = b""
_MAX_CHILDREN = 64


class MsgpackSerializer:
    """A msgpack serializer for checkpoints that only rebuilds classes it was allowed to.

    It writes the type tag `"msgpack.cp2"` (`"msgpack.cp5"` for a list of two or more
    pydantic models, such as a message list; plus `"null"`, `"bytes"` and `"bytearray"` for
    those values, as LangGraph's `JsonPlusSerializer` does). It reads its own format and the
    `msgpack`, `json`, `bytes`, `bytearray` and `null` tags of `JsonPlusSerializer` (and
    `msgpack.cp1` and `msgpack.cp3`, formats of earlier versions), under the same allowlist,
    so records written by the official savers load without re-encoding.

    Allowed by default: standard-library values (tuple, set, frozenset, bytes, bytearray, big
    ints, complex, datetime/date/time/timedelta/timezone/ZoneInfo, UUID, Decimal, paths,
    regex patterns, deque, OrderedDict, defaultdict, Counter, ipaddress), numpy arrays and
    scalars, all LangChain message classes and chunks, `Document`, and LangGraph's stored types
    (`Send`, `Interrupt`, `Command`, `Overwrite`, ...). Your own pydantic models, dataclasses,
    enums and NamedTuples are written freely but rebuilt only once allowed, through
    `allowed=`, `with_allowlist`, or the graph's state schema (LangGraph passes its types to
    `with_allowlist` when compiling). No data ever makes it import a module or call anything
    else; there is no pickle and no eval.

    Args:
        allowed: Extra classes that stored data may rebuild, as classes or as
            `(module, qualname)` tuples.

    Example:
        >>> serde = MsgpackSerializer(allowed=[("my_app.state", "Profile")])
        >>> serde.loads_typed(serde.dumps_typed((1, "two")))
        (1, 'two')
    """

    type_tag = C.TYPE_TAG

    def __init__(self, *, allowed: Iterable[type | tuple[str, str]] = ()) -> None:
        keys, classes = normalize(allowed)
        self._classes = classes
        self._resolver = Resolver(keys, classes)
        self._decoder = Decoder(self._resolver)
        # with_allowlist results, by normalized entries and by the entries as given: LangGraph
        # asks again on every invocation, with the same entries.
        self._children: dict[frozenset[type | tuple[str, str]], MsgpackSerializer] = {}
        self._answers: dict[frozenset[Any], MsgpackSerializer] = {}

    @property
    def allowed(self) -> frozenset[tuple[str, str]]:
        """The `(module, qualname)` pairs added to the default allowlist."""
        return self._resolver.keys

    def __repr__(self) -> str:
        return f"MsgpackSerializer(allowed={sorted(self.allowed)!r})"

    def with_allowlist(
        self, extra_allowlist: Collection[tuple[str, ...] | type]
    ) -> MsgpackSerializer:
        """A serializer that may also rebuild these classes; `self` if it already may.

        LangGraph calls this when compiling a graph, with the classes of its state schema as
        `(module, name)` tuples, and again on every invocation: the result is cached.

        Args:
            extra_allowlist: Classes, or `(module, qualname)` tuples.

        Returns:
            A new serializer whose allowlist is this one's plus `extra_allowlist`, or `self`.

        Raises:
            TypeError: An entry is neither a class nor a pair of strings.
        """
        entries = tuple(extra_allowlist)  # an iterator is read once
        given: frozenset[Any] | None
        try:
            given = frozenset(entries)
        except TypeError:  # an unhashable entry: `normalize` names it
            given = None
        else:
            answer = self._answers.get(given)
            if answer is not None:
                return answer
        answer = self._answer(entries)
        if given is not None:
            if len(self._answers) >= _MAX_CHILDREN:  # bounded, whatever callers pass
                self._answers.clear()
            self._answers[given] = answer
        return answer

    def _answer(self, entries: tuple[tuple[str, ...] | type, ...]) -> MsgpackSerializer:
        keys, classes = normalize(entries)
        known = self._classes
        if keys <= self.allowed and all(known.get(k) is c for k, c in classes.items()):
            return self
        token: frozenset[type | tuple[str, str]] = frozenset((*keys, *classes.values()))
        child = self._children.get(token)
        if child is None:
            if len(self._children) >= _MAX_CHILDREN:  # bounded, whatever callers pass
                self._children.clear()
            child = MsgpackSerializer(allowed=[*self.allowed, *known.values(), *token])
            self._children[token] = child
        return child

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        """Serialize `obj`.

        Args:
            obj: The value to store.

        Returns:
            `(type_tag, data)`: `("msgpack.cp2", ...)` (`"msgpack.cp5"` for a list of
            messages or other pydantic models), or `("null", b"")`, `("bytes", obj)`,
            `("bytearray", ...)` for those values.

        Raises:
            UnsupportedTypeError: `obj` holds a value whose type cannot be stored faithfully.
            NestingTooDeepError: `obj` nests containers deeper than msgpack allows.
            SerializationError: Reading `obj` failed.
        """
        if obj is None:
            return "null", _EMPTY
        cls = type(obj)
        if cls is bytes:
            return "bytes", obj  # no copy, and readable by JsonPlusSerializer too
        if cls is bytearray:
            return "bytearray", bytes(obj)
        return encode_typed(obj)

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        """Deserialize what `dumps_typed` (or `JsonPlusSerializer.dumps_typed`) returned.

        Args:
            data: `(type_tag, data)`; `data` may be any bytes-like object.

        Returns:
            The stored value, with its types.

        Raises:
            DisallowedTypeError: The data names a class that is not on the allowlist.
            TypeNotFoundError: An allowed class named by the data is not imported.
            NestingTooDeepError: The data nests deeper than allowed.
            EncryptedDataError: The value is encrypted (LangGraph's `EncryptedSerializer`).
            MalformedDataError: Unknown type tag, or bytes that are not valid for their tag.
        """
        tag, payload = data
        if tag in C.READ_TAGS:
            return self._decoder.decode(payload)
        if tag == "msgpack":
            return loads_jsonplus_msgpack(payload, self._resolver)
        if tag == "null":
            return None
        if tag == "bytes":
            return payload if type(payload) is bytes else bytes(payload)
        if tag == "bytearray":
            return bytearray(payload)
        if tag == "json":
            return loads_jsonplus_json(payload, self._resolver)
        if tag == "pickle":
            raise MalformedDataError("refusing to load pickle data: it can run arbitrary code")
        if "+" in tag:  # LangGraph's EncryptedSerializer: `{tag}+{cipher}`
            raise EncryptedDataError(tag)
        raise MalformedDataError(f"unknown serialization type tag {tag!r}")
