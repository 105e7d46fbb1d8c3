"""The wire format: a type tag and the msgpack extension codes that mark typed values.

A value msgpack cannot express natively is written as a msgpack array whose *last* element is
an extension object naming its type; the elements before it are the type's state::

    (1, 2)            -> [1, 2, Ext(TUPLE, b"")]
    Model(a=1)        -> [1, None, Ext(PYDANTIC_V2_ROW, b"pkg.mod:Model\0a")]

The reader unpacks the whole buffer once; a `list_hook` rebuilds each marked array as soon as
msgpack has decoded it, innermost first. So nothing is packed twice (no nested msgpack buffers,
unlike LangGraph's `JsonPlusSerializer`), and no Python recursion happens on either side: depth
is bounded by msgpack's own C limits.
"""

from __future__ import annotations

from typing import Final

TYPE_TAG: Final = "msgpack.cp2"
"""The tag this version writes. cp2 added `PYDANTIC_V2_ROW`; cp1 data is cp2 data without it."""
READ_TAGS: Final = frozenset({"msgpack.cp1", TYPE_TAG})

# Standard-library and numpy values: the extension data is empty.
TUPLE: Final = 1
SET: Final = 2
FROZENSET: Final = 3
# 4 is reserved: msgpack packs bytearray itself (as bytes), without asking us.
BIGINT: Final = 5
COMPLEX: Final = 6
DATETIME: Final = 7
DATE: Final = 8
TIME: Final = 9
TIMEDELTA: Final = 10
TIMEZONE: Final = 11
ZONEINFO: Final = 12
UUID: Final = 13
DECIMAL: Final = 14
PATH: Final = 15
PATTERN: Final = 16
DEQUE: Final = 17
ORDEREDDICT: Final = 18
DEFAULTDICT: Final = 19
COUNTER: Final = 20
IPADDRESS: Final = 21
EXCEPTION: Final = 22
SECRET: Final = 23
NDARRAY: Final = 24
NPSCALAR: Final = 25
LAST_BUILTIN: Final = 25

# Instances of classes: the extension data is b"module:qualname".
PYDANTIC_V2: Final = 64
PYDANTIC_V1: Final = 65
DATACLASS: Final = 66
ENUM: Final = 67
NAMEDTUPLE: Final = 68
SLOTS: Final = 69
# A pydantic v2 model with no extra fields, as a row: its field values in the order of the
# names after the NUL of the extension data (b"module:qualname\0name,name,..."), then None or
# the sorted names in `fields_set`. Keys are written once per class instead of once per
# instance, and the reader builds the field map from names it already holds; an empty extra
# map no longer forces the fields_set list. Loading the 80 messages of the benchmarks' agent
# thread went from 363 to about 245 us (timeit, this machine); on messages that carry a
# fields_set list anyway, 0.356 to 0.308 ms (benchmarks/results/serde.md, "80 messages loaded").
PYDANTIC_V2_ROW: Final = 70
CLASS_KINDS: Final = frozenset(
    {PYDANTIC_V2, PYDANTIC_V1, DATACLASS, ENUM, NAMEDTUPLE, SLOTS, PYDANTIC_V2_ROW}
)

KIND_NAMES: Final = {
    PYDANTIC_V2: "pydantic model",
    PYDANTIC_V1: "pydantic.v1 model",
    DATACLASS: "dataclass",
    ENUM: "enum",
    NAMEDTUPLE: "NamedTuple",
    SLOTS: "slotted class",
    PYDANTIC_V2_ROW: "pydantic model",
}
