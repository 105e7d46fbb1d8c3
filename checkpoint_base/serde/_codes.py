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
"""The tag this version writes, except for lists of rows (below). cp2 added `PYDANTIC_V2_ROW`;
cp1 data is cp2 data without it."""
ROWS_TAG: Final = "msgpack.cp5"
"""The tag of a value written as a `ROWS` list: cp5 is cp4 with a row's fields_set written as
a bit mask of its class's written fields (an int) instead of a list of names. Only such values
get it, so everything else stays readable by versions that know cp2."""
ROWS_NAMES_TAG: Final = "msgpack.cp4"
"""What a `ROWS` list with fields_set name lists was written with (read only): cp4 is cp2 plus
`ROWS`."""
ROW_LISTS_TAG: Final = "msgpack.cp3"
"""What a `ROW_LISTS` list was written with (read only): cp3 is cp2 plus `ROW_LISTS`."""
READ_TAGS: Final = frozenset({"msgpack.cp1", TYPE_TAG, ROW_LISTS_TAG, ROWS_NAMES_TAG, ROWS_TAG})

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
# A list of pydantic v2 rows (a message list), written once at the top of a value:
#   [[name, ...], index, fields_set or None, value, ..., index, ..., Ext(ROWS, b"")]
# where each name is a `PYDANTIC_V2_ROW` marker's text (b"module:qualname\0name,...") and
# each row is the index of its class's name, None (every field set) or its fields_set, then
# one value per name after the NUL. One marker for the whole list instead of one per
# instance: nothing to look up per message, and the class names are stored once. The rows
# are not arrays of their own, so msgpack builds no list and calls no hook per row. The 80
# messages of the benchmarks' 100-step thread (medians of one run, this machine): 45,081
# bytes, loaded in 198 and written in 84 us; one marker each, 54,968 bytes, 273 and 117 us;
# as ROW_LISTS, 45,161 bytes, loaded in 220 (the last version that wrote them) and written in
# 113 us. A fields_set is a bit mask since cp5 (an int: bit i for the i-th name after the
# NUL), a list of names in cp4; a reader takes either. As lists, the fields_sets of messages
# as LangGraph's nodes leave them (content and id set, say) cost msgpack a list and a hook
# call each and the reader a set built from names: those 80 messages loaded in 259 us as
# lists, 220 as masks, 212 with every field set (interleaved, one run).
ROWS: Final = 27
# The layout ROWS replaced (tag msgpack.cp3, still read): one array per row,
#   [[name, ...], [value, ..., fields_set or None, index], ..., Ext(ROW_LISTS, b"")]
ROW_LISTS: Final = 26
LAST_BUILTIN: Final = 27

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
