"""Key layout: every key of a thread carries one hash tag, derived from the thread id alone.

A thread's keys are `{prefix}:{t<base64url(thread_id)>}:<letter>`. Base64url has no `{`, `}`,
`:` or space and decodes uniquely, so no thread id can break the tag or reach another thread's
keys, and the whole thread lives in one cluster slot: every script on it is atomic.

Inside a thread, composite members and fields are built from *segments*: a string's UTF-8
bytes with NUL escaped as `\\x00\\xff`, terminated by `\\x00\\x01`. Concatenated segments sort
exactly as the tuples of strings they encode (Python orders `str` by code point, which is the
byte order of UTF-8), and no segment is a prefix of another, so a lexicographic range over
sorted-set members is exact (`before`, cursors, prefixes) with no escaping in Lua.

Per thread (letter: type, member or field -> value):

- `c` hash: K -> checkpoint (links for Lua, then the record), K = seg(ns) + seg(checkpoint_id)
- `i` zset: K (per-namespace order)
- `o` zset: seg(checkpoint_id) + K (order across namespaces)
- `m` zset: seg(key) + seg(canonical JSON value) + seg(checkpoint_id) + K (metadata index for
  `source`, `step`, `run_id`), and seg("") + seg(run_id) + ... (the record's run id)
- `b` hash: seg(ns) + seg(channel) + seg(version) -> blob
- `w` hash: K + seg(task_id) + seg(idx) -> write; `x` zset: the same fields, to range over K
- `h` hash: `s`, the bytes of the thread's checkpoint records. The thread listing no longer
  reads it (it asks `MEMORY USAGE` of the thread's keys); it stays, as the key every put
  writes: with each of a thread's keys there, a script on the thread during a slot
  migration is served by the target after ASKING instead of TRYAGAIN for the whole move

Per bucket (standalone: one bucket; cluster: one per slot, tagged to hash to that slot):
`threads` (zset of seg(thread_id) + key base), `runs` (zset of `F` + seg(run) + thread member
and `R` + seg(thread_id) + seg(run)), `exp` (zset of thread members scored by expiry time).

Per prefix: `{#}:schema` (the layout version), `{#}:buckets` (the buckets in use) and
`{#}:leases` (hash: lease name -> its end and holder, `Backend.claim`).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

__all__ = [
    "BUCKET_SUFFIXES",
    "THREAD_SUFFIXES",
    "Layout",
    "ThreadKeys",
    "seg",
    "seg_common",
    "slot_tag",
    "split",
    "thread_of",
    "unseg",
]

END = b"\x00\x01"
THREAD_SUFFIXES = (b"c", b"i", b"o", b"b", b"w", b"x", b"m", b"h")
BUCKET_SUFFIXES = (b"threads", b"runs", b"exp")
_SLOTS = 16384
_slot_tags: list[bytes] = []


def seg(value: str) -> bytes:
    """One order-preserving, prefix-free segment of a composite member."""
    return value.encode("utf-8").replace(b"\x00", b"\x00\xff") + END


_common: dict[str, bytes] = {}


def seg_common(value: str) -> bytes:
    """`seg` of a string that recurs (namespace, channel, metadata key), from a small cache."""
    found = _common.get(value)
    if found is None:
        if len(_common) > 8192:
            _common.clear()
        found = _common[value] = seg(value)
    return found


def unseg(data: bytes) -> str:
    """The string of one segment (with or without its terminator)."""
    if data.endswith(END):
        data = data[:-2]
    return data.replace(b"\x00\xff", b"\x00").decode("utf-8")


def split(member: bytes) -> list[bytes]:
    """The segments of a member (without terminators); the last item is what follows them."""
    return member.split(END)


def thread_of(key: bytes) -> str | None:
    """The thread id a thread key (`{prefix}:{t<base64url>}:<letter>`) belongs to, else None."""
    start = key.find(b":{t")
    end = key.find(b"}:", start + 3)
    if start < 0 or end < 0:
        return None
    tag = key[start + 3 : end]
    try:
        return base64.urlsafe_b64decode(tag + b"=" * (-len(tag) % 4)).decode("utf-8")
    except (binascii.Error, ValueError):
        return None


def _build_slot_tags() -> list[bytes]:
    # 168k CRC16s, about 80 ms once per process (measured on the 2-core dev machine).
    table: list[bytes | None] = [None] * _SLOTS
    missing = _SLOTS
    n = 0
    while missing:
        tag = b"#%d" % n
        slot = binascii.crc_hqx(tag, 0) % _SLOTS
        if table[slot] is None:
            table[slot] = tag
            missing -= 1
        n += 1
    return [t for t in table if t is not None]


def slot_tag(slot: int) -> bytes:
    """A short hash tag (`#<n>`, never a thread tag) whose keys hash to `slot`."""
    if not _slot_tags:
        _slot_tags.extend(_build_slot_tags())
    return _slot_tags[slot]


def _slot_of(tag: bytes) -> int:
    return binascii.crc_hqx(tag, 0) % _SLOTS


@dataclass(frozen=True, slots=True)
class ThreadKeys:
    """The keys of one thread and of the registry bucket in its slot.

    Attributes:
        base: `{prefix}:{tag}:`; a key is base + letter.
        keys: The thread's keys then the bucket's (`THREAD_SUFFIXES`, `BUCKET_SUFFIXES`).
        member: The thread's registry member: seg(thread_id) + base.
        tid: seg(thread_id).
        bucket: The bucket's tag.
    """

    base: bytes
    keys: tuple[bytes, ...]
    member: bytes
    tid: bytes
    bucket: bytes


class Layout:
    """Key names under one prefix, for a standalone server or a cluster.

    Args:
        prefix: Application namespace; may not contain `{` or `}` (they would move the tag).
        cluster: One registry bucket per slot (True) or a single bucket (False).
    """

    def __init__(self, prefix: str, *, cluster: bool) -> None:
        if not prefix or "{" in prefix or "}" in prefix:
            raise ValueError(f"key_prefix must be non-empty without '{{' or '}}', got {prefix!r}")
        self.prefix = prefix.encode("utf-8")
        self.cluster = cluster
        self.schema_key = self.prefix + b":{#}:schema"
        self.directory_key = self.prefix + b":{#}:buckets"
        self.lease_key = self.prefix + b":{#}:leases"
        self._cache: dict[str, ThreadKeys] = {}

    def thread(self, thread_id: str) -> ThreadKeys:
        """The keys of `thread_id` (cached: the same thread is written many times)."""
        found = self._cache.get(thread_id)
        if found is not None:
            return found
        tag = b"t" + base64.urlsafe_b64encode(thread_id.encode("utf-8")).rstrip(b"=")
        base = self.prefix + b":{" + tag + b"}:"
        bucket = slot_tag(_slot_of(tag)) if self.cluster else b"#"
        bucket_base = self.prefix + b":{" + bucket + b"}:"
        tid = seg(thread_id)
        keys = ThreadKeys(
            base=base,
            keys=tuple(base + s for s in THREAD_SUFFIXES)
            + tuple(bucket_base + s for s in BUCKET_SUFFIXES),
            member=tid + base,
            tid=tid,
            bucket=bucket,
        )
        if len(self._cache) > 4096:
            self._cache.clear()
        self._cache[thread_id] = keys
        return keys

    def bucket_keys(self, bucket: bytes) -> tuple[bytes, ...]:
        """The registry keys of one bucket (`BUCKET_SUFFIXES`)."""
        base = self.prefix + b":{" + bucket + b"}:"
        return tuple(base + s for s in BUCKET_SUFFIXES)
